/**
 * Node selectors as Kubernetes evaluates them (component-helpers nodeaffinity): a pod's
 * spec.nodeSelector (every label equal) AND its required node affinity (any term; within a term,
 * every expression and field requirement). Operators In, NotIn, Exists, DoesNotExist, Gt, Lt on
 * labels (NotIn and DoesNotExist hold for a node without the label; Gt and Lt compare the label's
 * integer value and fail when it is not an integer); matchFields on metadata.name with In / NotIn.
 * A term with no requirement matches no node.
 */
import type {
  Node,
  NodeSelectorRequirement,
  NodeSelectorTerm,
  Pod,
  PreferredSchedulingTerm,
} from '../../../proto/gen/types.js';

const INTEGER = /^-?\d+$/;

function requirementMatches(
  requirement: NodeSelectorRequirement,
  value: string | undefined,
  present: boolean,
): boolean {
  const values = requirement.values ?? [];
  switch (requirement.operator) {
    case 'In':
      return present && values.includes(value!);
    case 'NotIn':
      return !present || !values.includes(value!);
    case 'Exists':
      return present;
    case 'DoesNotExist':
      return !present;
    case 'Gt':
    case 'Lt': {
      if (!present || !INTEGER.test(value!) || values.length !== 1 || !INTEGER.test(values[0]!)) return false;
      const actual = Number(value);
      const bound = Number(values[0]);
      return requirement.operator === 'Gt' ? actual > bound : actual < bound;
    }
    default:
      return false;
  }
}

export function nodeSelectorTermMatches(term: NodeSelectorTerm, node: Node): boolean {
  const expressions = term.matchExpressions ?? [];
  const fields = term.matchFields ?? [];
  if (expressions.length === 0 && fields.length === 0) return false;
  const labels = node.metadata.labels;
  for (const requirement of expressions) {
    const present = labels !== undefined && Object.hasOwn(labels, requirement.key);
    if (!requirementMatches(requirement, present ? labels[requirement.key] : undefined, present))
      return false;
  }
  for (const requirement of fields) {
    // Only metadata.name is a field selector key (validation refuses others).
    if (requirement.key !== 'metadata.name') return false;
    if (!requirementMatches(requirement, node.metadata.name ?? '', true)) return false;
  }
  return true;
}

/** A pod's required placement on nodes: nodeSelector and required node affinity together. */
export class RequiredNodeAffinity {
  private readonly selector: [string, string][];
  private readonly terms: readonly NodeSelectorTerm[] | undefined;

  constructor(pod: Pod) {
    this.selector = Object.entries(pod.spec.nodeSelector ?? {});
    this.terms =
      pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  }

  /** True when the pod restricts its nodes at all. */
  get restricts(): boolean {
    return this.selector.length > 0 || this.terms !== undefined;
  }

  matches(node: Node): boolean {
    if (this.selector.length > 0) {
      const labels = node.metadata.labels;
      if (labels === undefined) return false;
      for (const [key, value] of this.selector) if (labels[key] !== value) return false;
    }
    if (this.terms === undefined) return true;
    for (const term of this.terms) if (nodeSelectorTermMatches(term, node)) return true;
    return false;
  }
}

/** The sum of the weights of the preferred terms a node matches. */
export function preferredAffinityScore(terms: readonly PreferredSchedulingTerm[], node: Node): number {
  let score = 0;
  for (const term of terms) {
    if (term.weight !== 0 && nodeSelectorTermMatches(term.preference, node)) score += term.weight;
  }
  return score;
}
