/**
 * Label and field selectors, as kubectl and the Kubernetes API read them. Pure: parse once, then
 * match many objects.
 *
 * Label selector text: comma-separated requirements, all of which must hold:
 *   app=web   app==web   tier!=db   env in (prod,staging)   env notin (dev)   app   !legacy
 * `!=` and `notin` also match objects without the label, as in Kubernetes. The empty text
 * selects everything.
 *
 * Field selector text: comma-separated `field=value`, `field==value` or `field!=value` over a fixed
 * set of fields per kind (metadata.name and metadata.namespace for every kind, spec.nodeName and
 * status.phase for pods, ...).
 *
 * The LabelSelector object (matchLabels + matchExpressions, as in Deployment.spec.selector) is
 * turned into the same requirements by `labelSelectorFromObject`.
 */
import { InvalidArgumentError } from '../../proto/errors.js';
import type { LabelSelector as LabelSelectorObject, KubeObject } from '../../proto/gen/types.js';
import type { KindStrategy } from './kinds/strategy.js';
import { checkLabelValue, checkQualifiedName } from './validation/names.js';

export type LabelOperator = 'Equals' | 'NotEquals' | 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelRequirement {
  readonly key: string;
  readonly operator: LabelOperator;
  /** One value for Equals/NotEquals, at least one for In/NotIn, none for Exists/DoesNotExist. */
  readonly values: readonly string[];
}

export interface LabelSelector {
  readonly requirements: readonly LabelRequirement[];
  /** True when every requirement holds for these labels (absent labels: an empty map). */
  matches(labels: Readonly<Record<string, string>> | undefined): boolean;
  /** True when the selector has no requirements and so selects everything. */
  readonly empty: boolean;
  /** The canonical text form, which parseLabelSelector reads back to the same selector. */
  toString(): string;
}

function requirementMatches(
  requirement: LabelRequirement,
  labels: Readonly<Record<string, string>>,
): boolean {
  const has = Object.hasOwn(labels, requirement.key);
  const value = has ? labels[requirement.key] : undefined;
  switch (requirement.operator) {
    case 'Equals':
    case 'In':
      return has && requirement.values.includes(value!);
    case 'NotEquals':
    case 'NotIn':
      return !has || !requirement.values.includes(value!);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
  }
}

function requirementText(requirement: LabelRequirement): string {
  switch (requirement.operator) {
    case 'Equals':
      return `${requirement.key}=${requirement.values[0]}`;
    case 'NotEquals':
      return `${requirement.key}!=${requirement.values[0]}`;
    case 'In':
      return `${requirement.key} in (${requirement.values.join(',')})`;
    case 'NotIn':
      return `${requirement.key} notin (${requirement.values.join(',')})`;
    case 'Exists':
      return requirement.key;
    case 'DoesNotExist':
      return `!${requirement.key}`;
  }
}

function makeLabelSelector(requirements: LabelRequirement[]): LabelSelector {
  const frozen = Object.freeze(
    requirements.map((r) => Object.freeze({ ...r, values: Object.freeze([...r.values]) })),
  );
  return {
    requirements: frozen,
    empty: frozen.length === 0,
    matches(labels) {
      const actual = labels ?? {};
      return frozen.every((requirement) => requirementMatches(requirement, actual));
    },
    toString() {
      return frozen.map(requirementText).join(',');
    },
  };
}

/** A selector that selects everything. */
export const EVERYTHING: LabelSelector = makeLabelSelector([]);

/** A selector that selects nothing (what a null LabelSelector object means in Kubernetes). */
export const NOTHING: LabelSelector = {
  requirements: [],
  empty: false,
  matches: () => false,
  toString: () => '<none>',
};

// ---------------------------------------------------------------------------------------------
// Label selector text

type Token =
  | { kind: 'word'; text: string; start: number }
  | { kind: 'op'; text: '=' | '==' | '!=' | '!' | '(' | ')' | ','; start: number };

const SPECIAL = new Set(['=', '!', '(', ')', ',']);

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const two = text.slice(i, i + 2);
    if (two === '==' || two === '!=') {
      tokens.push({ kind: 'op', text: two, start: i });
      i += 2;
      continue;
    }
    if (SPECIAL.has(c)) {
      tokens.push({ kind: 'op', text: c as '=' | '!' | '(' | ')' | ',', start: i });
      i++;
      continue;
    }
    const start = i;
    while (i < text.length && !/\s/.test(text[i]!) && !SPECIAL.has(text[i]!)) i++;
    tokens.push({ kind: 'word', text: text.slice(start, i), start });
  }
  return tokens;
}

class LabelSelectorParser {
  private position = 0;
  private readonly tokens: Token[];

  constructor(private readonly text: string) {
    this.tokens = tokenize(text);
  }

  parse(): LabelSelector {
    const requirements: LabelRequirement[] = [];
    if (this.tokens.length === 0) return makeLabelSelector(requirements);
    for (;;) {
      requirements.push(this.requirement());
      const next = this.next();
      if (next === undefined) break;
      if (!(next.kind === 'op' && next.text === ',')) this.fail(next, `expected ',' before "${next.text}"`);
    }
    return makeLabelSelector(requirements);
  }

  private next(): Token | undefined {
    return this.tokens[this.position++];
  }

  private peek(): Token | undefined {
    return this.tokens[this.position];
  }

  /** The requirement (top-level comma-separated term) a token belongs to, for error messages. */
  private termAt(token: Token | undefined): string {
    const at = token?.start ?? this.text.length;
    let depth = 0;
    let start = 0;
    for (let i = 0; i < this.text.length; i++) {
      const c = this.text[i];
      if (c === '(') depth++;
      else if (c === ')') depth = Math.max(0, depth - 1);
      else if (c === ',' && depth === 0) {
        if (i >= at) return this.text.slice(start, i).trim();
        start = i + 1;
      }
    }
    return this.text.slice(start).trim();
  }

  private fail(token: Token | undefined, reason: string): never {
    throw new InvalidArgumentError(
      `parse label selector ${JSON.stringify(this.text)}: term ${JSON.stringify(this.termAt(token))}: ${reason}`,
      'labelSelector',
    );
  }

  private key(token: Token | undefined): string {
    if (token === undefined || token.kind !== 'word') this.fail(token, 'expected a label key');
    const problem = checkQualifiedName(token.text);
    if (problem !== undefined) this.fail(token, `key "${token.text}" ${problem}`);
    return token.text;
  }

  private value(token: Token): string {
    const problem = checkLabelValue(token.text);
    if (problem !== undefined) this.fail(token, `value "${token.text}" ${problem}`);
    return token.text;
  }

  private requirement(): LabelRequirement {
    const first = this.next();
    if (first?.kind === 'op' && first.text === '!') {
      const key = this.key(this.next());
      return { key, operator: 'DoesNotExist', values: [] };
    }
    const key = this.key(first);
    const op = this.peek();
    if (op === undefined || (op.kind === 'op' && op.text === ','))
      return { key, operator: 'Exists', values: [] };
    this.position++;
    if (op.kind === 'op' && (op.text === '=' || op.text === '==' || op.text === '!=')) {
      const operator: LabelOperator = op.text === '!=' ? 'NotEquals' : 'Equals';
      const valueToken = this.peek();
      // `key=` compares with the empty value.
      if (valueToken === undefined || (valueToken.kind === 'op' && valueToken.text === ',')) {
        return { key, operator, values: [''] };
      }
      this.position++;
      if (valueToken.kind !== 'word') this.fail(valueToken, `expected a value after "${op.text}"`);
      return { key, operator, values: [this.value(valueToken)] };
    }
    if (op.kind === 'word' && (op.text === 'in' || op.text === 'notin')) {
      return { key, operator: op.text === 'in' ? 'In' : 'NotIn', values: this.set(op) };
    }
    this.fail(op, `expected one of =, ==, !=, in, notin after key "${key}", got "${op.text}"`);
  }

  private set(operator: Token): string[] {
    const open = this.next();
    if (!(open?.kind === 'op' && open.text === '('))
      this.fail(open ?? operator, `expected "(" after "${operator.text}"`);
    const values: string[] = [];
    for (;;) {
      const token = this.next();
      if (token === undefined) this.fail(operator, 'missing ")"');
      if (token.kind === 'op' && token.text === ')') {
        if (values.length === 0) this.fail(token, `"${operator.text}" needs at least one value`);
        return values;
      }
      if (token.kind !== 'word') this.fail(token, `expected a value in the set, got "${token.text}"`);
      values.push(this.value(token));
      const separator = this.next();
      if (separator?.kind === 'op' && separator.text === ')') return values;
      if (!(separator?.kind === 'op' && separator.text === ','))
        this.fail(separator ?? token, 'expected "," or ")" in the set');
    }
  }
}

/** Parses label selector text. Throws InvalidArgumentError (field `labelSelector`) naming the bad term. */
export function parseLabelSelector(text: string): LabelSelector {
  return new LabelSelectorParser(text).parse();
}

// ---------------------------------------------------------------------------------------------
// LabelSelector objects

const OBJECT_OPERATORS: Record<string, LabelOperator> = {
  In: 'In',
  NotIn: 'NotIn',
  Exists: 'Exists',
  DoesNotExist: 'DoesNotExist',
};

/**
 * The selector a LabelSelector object (matchLabels + matchExpressions) describes. An empty object
 * selects everything; undefined selects nothing, as in Kubernetes. Throws InvalidArgumentError whose
 * `field` is under `path` (e.g. "spec.selector.matchExpressions[0].operator").
 */
export function labelSelectorFromObject(
  selector: LabelSelectorObject | undefined,
  path = 'selector',
): LabelSelector {
  if (selector === undefined) return NOTHING;
  const requirements: LabelRequirement[] = [];
  const fail = (field: string, reason: string): never => {
    throw new InvalidArgumentError(`read label selector: field "${field}": ${reason}`, field);
  };
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    const keyProblem = checkQualifiedName(key);
    if (keyProblem !== undefined) fail(`${path}.matchLabels[${key}]`, `key ${keyProblem}`);
    const valueProblem = checkLabelValue(value);
    if (valueProblem !== undefined) fail(`${path}.matchLabels[${key}]`, `value "${value}" ${valueProblem}`);
    requirements.push({ key, operator: 'Equals', values: [value] });
  }
  (selector.matchExpressions ?? []).forEach((expression, i) => {
    const at = `${path}.matchExpressions[${i}]`;
    const keyProblem = checkQualifiedName(expression.key ?? '');
    if (keyProblem !== undefined) fail(`${at}.key`, `"${expression.key ?? ''}" ${keyProblem}`);
    const operator = OBJECT_OPERATORS[expression.operator];
    if (operator === undefined) {
      fail(`${at}.operator`, `"${expression.operator}" is not one of In, NotIn, Exists, DoesNotExist`);
    }
    const values = expression.values ?? [];
    if ((operator === 'In' || operator === 'NotIn') && values.length === 0) {
      fail(`${at}.values`, `must be non-empty when operator is ${operator}`);
    }
    if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0) {
      fail(`${at}.values`, `must be empty when operator is ${operator}`);
    }
    values.forEach((value, j) => {
      const problem = checkLabelValue(value);
      if (problem !== undefined) fail(`${at}.values[${j}]`, `"${value}" ${problem}`);
    });
    requirements.push({ key: expression.key, operator, values });
  });
  return makeLabelSelector(requirements);
}

/** Whether a LabelSelector object selects these labels (undefined selects nothing). */
export function selectorMatchesLabels(
  selector: LabelSelectorObject | undefined,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  return labelSelectorFromObject(selector).matches(labels);
}

// ---------------------------------------------------------------------------------------------
// Field selectors

export type FieldOperator = 'Equals' | 'NotEquals';

export interface FieldRequirement {
  readonly field: string;
  readonly operator: FieldOperator;
  readonly value: string;
}

export interface FieldSelector {
  readonly requirements: readonly FieldRequirement[];
  readonly empty: boolean;
  matches(obj: KubeObject): boolean;
  toString(): string;
}

type FieldGetter = (obj: KubeObject) => string;

const COMMON_FIELDS: Record<string, FieldGetter> = {
  'metadata.name': (obj) => obj.metadata.name ?? '',
  'metadata.namespace': (obj) => obj.metadata.namespace ?? '',
};

/** `field op value` with op `=`, `==` or `!=`, split at the first `=` or `!`; undefined when malformed. */
function splitFieldTerm(term: string): { field: string; op: '=' | '==' | '!='; value: string } | undefined {
  const equals = term.indexOf('=');
  const bang = term.indexOf('!');
  const at = bang !== -1 && (equals === -1 || bang < equals) ? bang : equals;
  if (at === -1) return undefined;
  let op: '=' | '==' | '!=';
  if (term[at] === '!') {
    if (term[at + 1] !== '=') return undefined;
    op = '!=';
  } else op = term[at + 1] === '=' ? '==' : '=';
  const field = term.slice(0, at).trim();
  const value = term.slice(at + op.length).trim();
  if (field === '' || /\s/.test(field) || value.includes('=') || value.includes('!')) return undefined;
  return { field, op, value };
}

/**
 * Parses field selector text for objects of a kind: metadata.name, metadata.namespace and the
 * fields the kind's strategy makes selectable. Throws InvalidArgumentError (field
 * `fieldSelector`) naming the bad term and, for an unsupported field, the supported ones.
 */
export function parseFieldSelector(text: string, strategy: KindStrategy): FieldSelector {
  const kind = strategy.info.kind;
  const getters: Record<string, FieldGetter> = { ...COMMON_FIELDS, ...(strategy.selectableFields ?? {}) };
  const requirements: FieldRequirement[] = [];
  const terms = text.trim() === '' ? [] : text.split(',');
  const fail = (term: string, reason: string): never => {
    throw new InvalidArgumentError(
      `parse field selector ${JSON.stringify(text)}: term ${JSON.stringify(term.trim())}: ${reason}`,
      'fieldSelector',
    );
  };
  for (const term of terms) {
    // Split with indexOf, not a regular expression: a pattern of adjacent quantifiers over
    // whitespace backtracked for seconds on a term of a few thousand spaces.
    const { field, op, value } =
      splitFieldTerm(term) ?? fail(term, 'expected field=value, field==value or field!=value');
    if (!Object.hasOwn(getters, field)) {
      fail(
        term,
        `field "${field}" is not supported for ${kind}; supported: ${Object.keys(getters).join(', ')}`,
      );
    }
    requirements.push({ field, operator: op === '!=' ? 'NotEquals' : 'Equals', value });
  }
  const frozen = Object.freeze(requirements.map((r) => Object.freeze(r)));
  return {
    requirements: frozen,
    empty: frozen.length === 0,
    matches(obj) {
      return frozen.every((r) => (getters[r.field]!(obj) === r.value) === (r.operator === 'Equals'));
    },
    toString() {
      return frozen.map((r) => `${r.field}${r.operator === 'Equals' ? '=' : '!='}${r.value}`).join(',');
    },
  };
}
