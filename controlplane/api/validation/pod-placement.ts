/**
 * Where a pod may run: affinity, tolerations, topology spread constraints and scheduling gates,
 * as Kubernetes 1.32 validates them.
 */
import type {
  Affinity,
  LabelSelector,
  NodeSelectorTerm,
  PodAffinityTerm,
  PodSchedulingGate,
  Toleration,
  TopologySpreadConstraint,
  WeightedPodAffinityTerm,
} from '../../../proto/gen/types.js';
import { labelSelectorFromObject } from '../selectors.js';
import {
  requireInRange,
  requireNonEmpty,
  requireOneOf,
  requireSetOneOf,
  requireValid,
  violation,
} from './field-violation.js';
import { checkDns1123Label, checkLabelValue, checkQualifiedName } from './names.js';

const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'];
const NODE_SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'];

export function validateToleration(path: string, toleration: Toleration): void {
  if (toleration.key) requireValid(`${path}.key`, toleration.key, checkQualifiedName(toleration.key));
  requireOneOf(`${path}.operator`, toleration.operator, ['Exists', 'Equal']);
  if (!toleration.key && toleration.operator !== 'Exists') {
    violation(`${path}.operator`, 'must be Exists when key is empty (a toleration of every taint)');
  }
  if (toleration.operator === 'Exists' && toleration.value) {
    violation(`${path}.value`, 'must be empty when operator is Exists');
  }
  if (toleration.value) {
    const problem = checkLabelValue(toleration.value);
    if (problem !== undefined) violation(`${path}.value`, `"${toleration.value}" ${problem}`);
  }
  requireOneOf(`${path}.effect`, toleration.effect, TAINT_EFFECTS);
  if (toleration.tolerationSeconds !== undefined && toleration.effect !== 'NoExecute') {
    violation(`${path}.tolerationSeconds`, 'may be set only when effect is NoExecute');
  }
}

function validateNodeSelectorTerm(path: string, term: NodeSelectorTerm): void {
  for (const part of ['matchExpressions', 'matchFields'] as const) {
    (term[part] ?? []).forEach((requirement, i) => {
      const at = `${path}.${part}[${i}]`;
      if (part === 'matchFields') {
        requireOneOf(`${at}.key`, requirement.key, ['metadata.name']);
      } else {
        requireValid(`${at}.key`, requirement.key, checkQualifiedName(requirement.key));
      }
      requireOneOf(`${at}.operator`, requirement.operator, NODE_SELECTOR_OPERATORS);
      const values = requirement.values ?? [];
      switch (requirement.operator) {
        case 'In':
        case 'NotIn':
          if (values.length === 0)
            violation(`${at}.values`, `must be non-empty when operator is ${requirement.operator}`);
          break;
        case 'Exists':
        case 'DoesNotExist':
          if (values.length > 0)
            violation(`${at}.values`, `must be empty when operator is ${requirement.operator}`);
          break;
        case 'Gt':
        case 'Lt':
          if (values.length !== 1 || !/^-?\d+$/.test(values[0]!)) {
            violation(`${at}.values`, `must be a single integer when operator is ${requirement.operator}`);
          }
      }
    });
  }
}

/** The keys a LabelSelector object names, in matchLabels and matchExpressions. */
function selectorKeys(selector: LabelSelector): Set<string> {
  return new Set([
    ...Object.keys(selector.matchLabels ?? {}),
    ...(selector.matchExpressions ?? []).map((expression) => expression.key),
  ]);
}

/**
 * matchLabelKeys / mismatchLabelKeys: label keys whose values the scheduler takes from the pod
 * itself; they refine a labelSelector, so they need one, and each must be a label key.
 */
function validateLabelKeys(
  path: string,
  keys: string[] | undefined,
  selector: LabelSelector | undefined,
): void {
  if (keys === undefined || keys.length === 0) return;
  if (selector === undefined) violation(path, 'may not be set when labelSelector is not set');
  keys.forEach((key, i) => requireValid(`${path}[${i}]`, key, checkQualifiedName(key)));
}

function validatePodAffinityTerm(path: string, term: PodAffinityTerm): void {
  if (term.labelSelector) labelSelectorFromObject(term.labelSelector, `${path}.labelSelector`);
  if (term.namespaceSelector) labelSelectorFromObject(term.namespaceSelector, `${path}.namespaceSelector`);
  requireValid(
    `${path}.topologyKey`,
    requireNonEmpty(
      `${path}.topologyKey`,
      term.topologyKey,
      'the node label that defines the topology domain',
    ),
    checkQualifiedName(term.topologyKey),
  );
  (term.namespaces ?? []).forEach((namespace, i) =>
    requireValid(`${path}.namespaces[${i}]`, namespace, checkDns1123Label(namespace)),
  );
  validateLabelKeys(`${path}.matchLabelKeys`, term.matchLabelKeys, term.labelSelector);
  validateLabelKeys(`${path}.mismatchLabelKeys`, term.mismatchLabelKeys, term.labelSelector);
  const mismatch = new Set(term.mismatchLabelKeys ?? []);
  (term.matchLabelKeys ?? []).forEach((key, i) => {
    if (mismatch.has(key)) violation(`${path}.matchLabelKeys[${i}]`, `"${key}" is also in mismatchLabelKeys`);
  });
}

function validateWeightedTerms(path: string, terms: WeightedPodAffinityTerm[] | undefined): void {
  (terms ?? []).forEach((term, i) => {
    requireInRange(`${path}[${i}].weight`, term.weight, 1, 100);
    validatePodAffinityTerm(`${path}[${i}].podAffinityTerm`, term.podAffinityTerm);
  });
}

export function validateAffinity(path: string, affinity: Affinity | undefined): void {
  if (affinity === undefined) return;
  const node = affinity.nodeAffinity;
  if (node?.requiredDuringSchedulingIgnoredDuringExecution) {
    const at = `${path}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`;
    const terms = node.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms ?? [];
    if (terms.length === 0) violation(at, 'required: at least one node selector term');
    terms.forEach((term, i) => validateNodeSelectorTerm(`${at}[${i}]`, term));
  }
  (node?.preferredDuringSchedulingIgnoredDuringExecution ?? []).forEach((term, i) => {
    const at = `${path}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[${i}]`;
    requireInRange(`${at}.weight`, term.weight, 1, 100);
    validateNodeSelectorTerm(`${at}.preference`, term.preference);
  });
  for (const kind of ['podAffinity', 'podAntiAffinity'] as const) {
    const part = affinity[kind];
    (part?.requiredDuringSchedulingIgnoredDuringExecution ?? []).forEach((term, i) =>
      validatePodAffinityTerm(`${path}.${kind}.requiredDuringSchedulingIgnoredDuringExecution[${i}]`, term),
    );
    validateWeightedTerms(
      `${path}.${kind}.preferredDuringSchedulingIgnoredDuringExecution`,
      part?.preferredDuringSchedulingIgnoredDuringExecution,
    );
  }
}

/**
 * topologySpreadConstraints: how evenly pods matching labelSelector spread over the domains of
 * topologyKey. One constraint per (topologyKey, whenUnsatisfiable).
 */
export function validateTopologySpreadConstraints(
  path: string,
  constraints: TopologySpreadConstraint[] | undefined,
): void {
  const seen = new Set<string>();
  (constraints ?? []).forEach((constraint, i) => {
    const at = `${path}[${i}]`;
    if ((constraint.maxSkew ?? 0) <= 0)
      violation(`${at}.maxSkew`, `must be greater than zero, got ${constraint.maxSkew ?? 0}`);
    requireOneOf(`${at}.whenUnsatisfiable`, constraint.whenUnsatisfiable, [
      'DoNotSchedule',
      'ScheduleAnyway',
    ]);
    const pair = `${constraint.topologyKey}/${constraint.whenUnsatisfiable}`;
    if (seen.has(pair)) {
      violation(
        at,
        `duplicate constraint for topologyKey "${constraint.topologyKey}" and whenUnsatisfiable ${constraint.whenUnsatisfiable}`,
      );
    }
    seen.add(pair);
    if (constraint.minDomains !== undefined) {
      if (constraint.minDomains <= 0)
        violation(`${at}.minDomains`, `must be greater than zero, got ${constraint.minDomains}`);
      if (constraint.whenUnsatisfiable !== 'DoNotSchedule') {
        violation(
          `${at}.minDomains`,
          `may be set only when whenUnsatisfiable is DoNotSchedule, not ${constraint.whenUnsatisfiable}`,
        );
      }
    }
    requireSetOneOf(`${at}.nodeAffinityPolicy`, constraint.nodeAffinityPolicy, ['Honor', 'Ignore']);
    requireSetOneOf(`${at}.nodeTaintsPolicy`, constraint.nodeTaintsPolicy, ['Honor', 'Ignore']);
    if (constraint.labelSelector) labelSelectorFromObject(constraint.labelSelector, `${at}.labelSelector`);
    validateLabelKeys(`${at}.matchLabelKeys`, constraint.matchLabelKeys, constraint.labelSelector);
    const inSelector = constraint.labelSelector ? selectorKeys(constraint.labelSelector) : new Set<string>();
    (constraint.matchLabelKeys ?? []).forEach((key, j) => {
      if (inSelector.has(key))
        violation(`${at}.matchLabelKeys[${j}]`, `"${key}" is also a key of labelSelector`);
    });
  });
}

/** schedulingGates: qualified names, each once; the scheduler leaves the pod alone until none is left. */
export function validateSchedulingGates(path: string, gates: PodSchedulingGate[] | undefined): void {
  const seen = new Set<string>();
  (gates ?? []).forEach((gate, i) => {
    requireValid(`${path}[${i}].name`, gate.name, checkQualifiedName(gate.name));
    if (seen.has(gate.name)) violation(`${path}[${i}].name`, `duplicate scheduling gate "${gate.name}"`);
    seen.add(gate.name);
  });
}
