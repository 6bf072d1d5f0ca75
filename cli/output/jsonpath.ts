/**
 * kubectl's JSONPath dialect (`-o jsonpath=…`, custom-columns, `--sort-by`), written from its
 * documentation (https://kubernetes.io/docs/reference/kubectl/jsonpath/):
 *
 *   template   text outside braces is printed as it is; `{…}` is an action
 *   {.a.b}     fields; `{@.a}` the same (the current object); `{$.a}` from the root;
 *              `\.` escapes a dot inside a key (`{.metadata.labels.app\.kubernetes\.io/name}`)
 *   {.a[0]}    index (negative counts from the end), `[1:3]` and `[::2]` slices, `[*]` or `.*` every
 *              element or value, `[0,2]` and `['a','b']` unions
 *   {..name}   recursive descent
 *   {.items[?(@.status=="Ready")]}   filters: ==, !=, <, <=, >, >= against a string, number or
 *              boolean, or `[?(@.x)]` for "has x"
 *   {"\t"}     a string literal (Go escapes)
 *   {range .items[*]}…{end}          the body once per result
 *
 * An action prints its results separated by spaces: strings as they are, numbers and booleans as
 * text, null as `null`, lists and mappings as compact JSON. A missing field prints nothing (kubectl's
 * `--allow-missing-template-keys`, on by default); an index past the end is an error, as in kubectl.
 * Everything here is pure.
 */
import { InvalidArgumentError } from '../../proto/errors.js';

export type Segment =
  | { type: 'field'; names: string[] }
  | { type: 'wildcard' }
  | { type: 'index'; indices: number[] }
  | { type: 'slice'; start: number | undefined; end: number | undefined; step: number | undefined }
  | { type: 'filter'; filter: Filter }
  | { type: 'recursive' };

export interface JsonPath {
  /** `$`: from the root; otherwise from the current object (`.a`, `@.a`). */
  fromRoot: boolean;
  segments: Segment[];
}

type Literal = string | number | boolean | null;
type Operand = { path: JsonPath } | { literal: Literal };

export interface Filter {
  left: Operand;
  op?: '==' | '!=' | '<' | '<=' | '>' | '>=';
  right?: Operand;
}

export type TemplateNode =
  | { type: 'text'; text: string }
  | { type: 'path'; path: JsonPath }
  | { type: 'range'; path: JsonPath; body: TemplateNode[] };

export interface JsonPathTemplate {
  source: string;
  nodes: TemplateNode[];
}

/** A template error, said as kubectl says it: `error parsing jsonpath TEMPLATE, REASON`. */
export class JsonPathError extends InvalidArgumentError {}

// ---------------------------------------------------------------------------------------------
// Parsing

/** Parses a whole template (`{.a}{"\t"}{.b}`); throws JsonPathError. */
export function parseJsonPathTemplate(source: string): JsonPathTemplate {
  const fail = (reason: string): never => {
    throw new JsonPathError(`error parsing jsonpath ${source}, ${reason}`, 'output');
  };
  const root: TemplateNode[] = [];
  const stack: TemplateNode[][] = [root];
  let i = 0;
  while (i < source.length) {
    const open = source.indexOf('{', i);
    const current = stack[stack.length - 1]!;
    if (open < 0) {
      current.push({ type: 'text', text: source.slice(i) });
      break;
    }
    if (open > i) current.push({ type: 'text', text: source.slice(i, open) });
    const close = findActionEnd(source, open + 1);
    if (close < 0) fail('unclosed action');
    const action = source.slice(open + 1, close).trim();
    i = close + 1;
    if (action === 'end') {
      if (stack.length === 1) fail('not in range, nothing to end');
      stack.pop();
      continue;
    }
    if (/^range\s/.test(action)) {
      const node: TemplateNode = {
        type: 'range',
        path: parsePathExpression(action.slice(6).trim(), fail),
        body: [],
      };
      current.push(node);
      stack.push(node.body);
      continue;
    }
    if (action === '') fail('empty action');
    if (action.startsWith('"') || action.startsWith("'")) {
      const { value, rest } = readQuoted(action, 0, fail);
      if (action.slice(rest).trim() !== '') fail(`unrecognized character after ${action.slice(0, rest)}`);
      current.push({ type: 'text', text: value });
      continue;
    }
    current.push({ type: 'path', path: parsePathExpression(action, fail) });
  }
  // An unterminated range runs to the end of the template, as kubectl lets it.
  return { source, nodes: root };
}

/** Parses one path (`.metadata.name`, `{.metadata.name}`, `$.items[*]`) as custom-columns and --sort-by take it. */
export function parseJsonPath(expression: string, what = 'jsonpath'): JsonPath {
  let text = expression.trim();
  if (text.startsWith('{') && text.endsWith('}')) text = text.slice(1, -1).trim();
  return parsePathExpression(text, (reason) => {
    throw new JsonPathError(`error parsing ${what} ${expression}, ${reason}`, 'output');
  });
}

/** The index of the `}` closing an action that starts at `from`, skipping quoted strings. */
function findActionEnd(source: string, from: number): number {
  for (let i = from; i < source.length; i++) {
    const c = source[i];
    if (c === '"' || c === "'") {
      for (i++; i < source.length && source[i] !== c; i++) if (source[i] === '\\') i++;
    } else if (c === '}') return i;
  }
  return -1;
}

const GO_ESCAPES: Record<string, string> = {
  n: '\n',
  t: '\t',
  r: '\r',
  '\\': '\\',
  '"': '"',
  "'": "'",
  a: '\x07',
  b: '\b',
  f: '\f',
  v: '\v',
  '0': '\0',
};

function readQuoted(
  text: string,
  at: number,
  fail: (reason: string) => never,
): { value: string; rest: number } {
  const quote = text[at]!;
  let value = '';
  for (let i = at + 1; i < text.length; i++) {
    const c = text[i]!;
    if (c === quote) return { value, rest: i + 1 };
    if (c === '\\') {
      const next = text[++i];
      if (next === undefined) break;
      if (next === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) {
        value += String.fromCharCode(parseInt(text.slice(i + 1, i + 5), 16));
        i += 4;
        continue;
      }
      const escaped = GO_ESCAPES[next];
      if (escaped === undefined) fail(`invalid escape \\${next} in ${text.slice(at)}`);
      value += escaped;
    } else value += c;
  }
  return fail(`unterminated string ${text.slice(at)}`);
}

/** Characters that end a field name: the next step, a space, or (inside a filter) an operator. */
const FIELD_END = new Set(['.', '[', ' ', '\t', '\n', ')', '=', '!', '<', '>', ',', '}']);

function parsePathExpression(text: string, fail: (reason: string) => never): JsonPath {
  const parser = new PathParser(text, fail);
  const path = parser.path();
  parser.skipSpace();
  if (!parser.done()) fail(`unrecognized character in action: ${JSON.stringify(parser.rest())}`);
  return path;
}

class PathParser {
  at = 0;
  constructor(
    private readonly text: string,
    private readonly fail: (reason: string) => never,
  ) {}

  done(): boolean {
    return this.at >= this.text.length;
  }
  rest(): string {
    return this.text.slice(this.at);
  }
  peek(offset = 0): string | undefined {
    return this.text[this.at + offset];
  }
  skipSpace(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.at++;
  }

  /** A path starting at `.`, `..`, `[`, `$` or `@`. */
  path(): JsonPath {
    this.skipSpace();
    let fromRoot = false;
    if (this.peek() === '$') {
      fromRoot = true;
      this.at++;
    } else if (this.peek() === '@') this.at++;
    else if (this.peek() !== '.' && this.peek() !== '[') {
      this.fail(`unrecognized identifier ${this.rest().split(/[.[\s]/)[0]}`);
    }
    const segments: Segment[] = [];
    for (;;) {
      const c = this.peek();
      if (c === '.') {
        if (this.peek(1) === '.') {
          this.at += 2;
          segments.push({ type: 'recursive' });
          if (this.peek() === '[') continue;
        } else this.at++;
        if (this.peek() === '*') {
          this.at++;
          segments.push({ type: 'wildcard' });
          continue;
        }
        // `{.}` names the empty key, so prints nothing, as in kubectl; `{@}` is the object itself.
        segments.push({ type: 'field', names: [this.fieldName()] });
      } else if (c === '[') {
        segments.push(this.bracket());
      } else break;
    }
    return { fromRoot, segments };
  }

  private fieldName(): string {
    let name = '';
    while (!this.done()) {
      const c = this.peek()!;
      if (c === '\\' && this.peek(1) !== undefined) {
        name += this.peek(1);
        this.at += 2;
        continue;
      }
      if (FIELD_END.has(c)) break;
      name += c;
      this.at++;
    }
    return name;
  }

  private bracket(): Segment {
    const start = this.at;
    this.at++; // [
    this.skipSpace();
    if (this.peek() === '?') {
      this.at++;
      this.skipSpace();
      if (this.peek() !== '(') this.fail(`expected "(" after "[?" in ${this.text}`);
      this.at++;
      const filter = this.filter();
      this.skipSpace();
      if (this.peek() !== ')') this.fail(`unclosed filter in ${this.text.slice(start)}`);
      this.at++;
      this.skipSpace();
      if (this.peek() !== ']') this.fail(`unclosed array expect ] in ${this.text.slice(start)}`);
      this.at++;
      return { type: 'filter', filter };
    }
    if (this.peek() === "'" || this.peek() === '"') {
      const names: string[] = [];
      for (;;) {
        this.skipSpace();
        if (this.peek() !== "'" && this.peek() !== '"') this.fail(`invalid array index ${this.rest()}`);
        const { value, rest } = readQuoted(this.text, this.at, this.fail);
        names.push(value);
        this.at = rest;
        this.skipSpace();
        if (this.peek() === ',') {
          this.at++;
          continue;
        }
        if (this.peek() === ']') {
          this.at++;
          return { type: 'field', names };
        }
        this.fail(`unclosed array expect ] in ${this.text.slice(start)}`);
      }
    }
    const close = this.text.indexOf(']', this.at);
    if (close < 0) this.fail(`unclosed array expect ] in ${this.text.slice(start)}`);
    const inner = this.text.slice(this.at, close).trim();
    this.at = close + 1;
    if (inner === '*') return { type: 'wildcard' };
    const integer = (s: string): number | undefined => {
      const t = s.trim();
      if (t === '') return undefined;
      if (!/^-?\d+$/.test(t)) this.fail(`invalid array index ${inner}`);
      return Number(t);
    };
    if (inner.includes(':')) {
      const parts = inner.split(':');
      if (parts.length > 3) this.fail(`invalid array index ${inner}`);
      return {
        type: 'slice',
        start: integer(parts[0]!),
        end: integer(parts[1]!),
        step: integer(parts[2] ?? ''),
      };
    }
    if (inner === '') this.fail('invalid array index (empty)');
    return {
      type: 'index',
      indices: inner.split(',').map((part) => {
        const value = integer(part);
        if (value === undefined) this.fail(`invalid array index ${inner}`);
        return value!;
      }),
    };
  }

  private filter(): Filter {
    const left = this.operand();
    this.skipSpace();
    const op = /^(==|!=|<=|>=|<|>)/.exec(this.rest())?.[1] as Filter['op'] | undefined;
    if (op === undefined) return { left };
    this.at += op.length;
    return { left, op, right: this.operand() };
  }

  private operand(): Operand {
    this.skipSpace();
    const c = this.peek();
    if (c === '@' || c === '$' || c === '.') return { path: this.path() };
    if (c === '"' || c === "'") {
      const { value, rest } = readQuoted(this.text, this.at, this.fail);
      this.at = rest;
      return { literal: value };
    }
    const word = /^[^\s)=!<>]+/.exec(this.rest())?.[0] ?? '';
    this.at += word.length;
    if (/^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/.test(word)) return { literal: Number(word) };
    if (word === 'true' || word === 'false') return { literal: word === 'true' };
    if (word === 'null' || word === 'nil') return { literal: null };
    return this.fail(`unrecognized filter operand ${JSON.stringify(word || this.rest())}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/** Thrown for a template that cannot run against the data (an index past the end). */
export class JsonPathExecutionError extends InvalidArgumentError {}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The values `path` selects in `current` (`root` for `$`). */
export function evaluatePath(path: JsonPath, current: unknown, root: unknown = current): unknown[] {
  let values: unknown[] = [path.fromRoot ? root : current];
  for (const segment of path.segments) values = step(segment, values, root);
  return values;
}

function step(segment: Segment, values: unknown[], root: unknown): unknown[] {
  const out: unknown[] = [];
  for (const value of values) {
    switch (segment.type) {
      case 'field':
        if (isObject(value))
          for (const name of segment.names) if (Object.hasOwn(value, name)) out.push(value[name]);
        break;
      case 'wildcard':
        if (Array.isArray(value)) out.push(...value);
        else if (isObject(value)) out.push(...Object.values(value));
        break;
      case 'index':
        if (!Array.isArray(value)) break;
        for (const index of segment.indices) {
          const at = index < 0 ? value.length + index : index;
          if (at < 0 || at >= value.length) {
            throw new JsonPathExecutionError(
              `array index out of bounds: index ${index}, length ${value.length}`,
              'output',
            );
          }
          out.push(value[at]);
        }
        break;
      case 'slice': {
        if (!Array.isArray(value)) break;
        const length = value.length;
        const step = segment.step ?? 1;
        if (step <= 0) throw new JsonPathExecutionError('step must be > 0', 'output');
        const clamp = (n: number): number => Math.min(Math.max(n < 0 ? length + n : n, 0), length);
        const start = clamp(segment.start ?? 0);
        const end = clamp(segment.end ?? length);
        for (let i = start; i < end; i += step) out.push(value[i]);
        break;
      }
      case 'filter': {
        const elements = Array.isArray(value) ? value : isObject(value) ? Object.values(value) : [];
        for (const element of elements) if (matches(segment.filter, element, root)) out.push(element);
        break;
      }
      case 'recursive':
        collect(value, out);
        break;
    }
  }
  return out;
}

/** `value` and everything below it, parents before children. */
function collect(value: unknown, out: unknown[]): void {
  const children = Array.isArray(value) ? value : isObject(value) ? Object.values(value) : [];
  if (children.length === 0) return;
  out.push(value);
  for (const child of children) collect(child, out);
}

function operandValues(operand: Operand, element: unknown, root: unknown): unknown[] {
  return 'literal' in operand ? [operand.literal] : evaluatePath(operand.path, element, root);
}

function matches(filter: Filter, element: unknown, root: unknown): boolean {
  const lefts = operandValues(filter.left, element, root);
  if (filter.op === undefined) return lefts.length > 0 && lefts[0] !== null && lefts[0] !== false;
  const rights = operandValues(filter.right!, element, root);
  if (lefts.length === 0 || rights.length === 0) return false;
  return lefts.some((left) => rights.some((right) => compare(left, filter.op!, right)));
}

function compare(left: unknown, op: NonNullable<Filter['op']>, right: unknown): boolean {
  const numeric = typeof left === 'number' && typeof right === 'number';
  if (op === '==' || op === '!=') {
    const equal = numeric ? left === right : scalarText(left) === scalarText(right);
    return op === '==' ? equal : !equal;
  }
  const a = numeric ? (left as number) : scalarText(left);
  const b = numeric ? (right as number) : scalarText(right);
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    default:
      return a >= b;
  }
}

function scalarText(value: unknown): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
}

/** A number as Go prints a float64 with %v (`1e+21`, `0.5`); whole numbers as integers. */
export function goNumber(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : n < 0 ? '-Inf' : 'NaN';
  const exponent = Math.floor(Math.log10(Math.abs(n)));
  if (exponent < -4 || exponent >= 21) {
    const [mantissa, exp] = n.toExponential().split('e') as [string, string];
    const sign = exp.startsWith('-') ? '-' : '+';
    const digits = exp.replace(/^[-+]/, '');
    return `${mantissa}e${sign}${digits.padStart(2, '0')}`;
  }
  return String(n);
}

/** One result as kubectl's jsonpath prints it. */
export function resultText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number') return goNumber(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'boolean') return String(value);
  return JSON.stringify(sortedForJson(value));
}

/** Mappings with sorted keys, as Go's encoding/json writes a map. */
function sortedForJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedForJson);
  if (isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortedForJson(value[key]);
    return out;
  }
  if (typeof value === 'bigint') return Number(value);
  return value;
}

/** Runs a template against `data`; throws JsonPathExecutionError naming the template. */
export function executeJsonPath(template: JsonPathTemplate, data: unknown): string {
  try {
    return run(template.nodes, data, data);
  } catch (err) {
    if (err instanceof JsonPathExecutionError)
      throw new JsonPathExecutionError(
        `error executing jsonpath ${JSON.stringify(template.source)}: ${err.message}`,
        'output',
        {
          cause: err,
        },
      );
    throw err;
  }
}

function run(nodes: TemplateNode[], current: unknown, root: unknown): string {
  let text = '';
  for (const node of nodes) {
    if (node.type === 'text') text += node.text;
    else if (node.type === 'path') text += evaluatePath(node.path, current, root).map(resultText).join(' ');
    else {
      // Once per result: `{range .items[*]}` walks the elements, `{range .items}` the one list.
      for (const item of evaluatePath(node.path, current, root)) text += run(node.body, item, root);
    }
  }
  return text;
}
