/**
 * A fast reader for the YAML that manifests are written in, so `skiff apply -f` of thousands of
 * documents does not spend most of its time in the general YAML parser (issue 9): the `yaml`
 * package builds a token stream, a CST and a node tree for every document, ~0.3 ms per ConfigMap.
 *
 * The subset read here: block mappings and sequences by indentation (a sequence may sit at its
 * key's indentation, `- key: v` starts a mapping inside an item), single-line plain, single- and
 * double-quoted scalars (escapes included), literal and folded block scalars with their chomping
 * and indentation indicators, single-line flow mappings and sequences of scalars, comments, `---`
 * and `...` markers and empty documents. Plain scalars resolve through the very tags of the
 * schema the full parser uses (KUBERNETES_YAML: YAML 1.1 with Go octals, without timestamps), so
 * the two cannot disagree on `yes`, `0400`, `.inf` or `22:22`; keys must read as strings.
 *
 * Everything else (anchors, aliases, tags, merges, complex or non-string keys, multi-line plain or
 * quoted scalars, multi-line flow collections, tabs where indentation or separation is read,
 * duplicate keys, anything malformed) makes readSubsetDocument answer OUTSIDE_SUBSET, and the
 * caller reads that document with the full parser, which also produces every error and location.
 * splitDocuments answers undefined (the whole source goes to the full parser) for what changes how
 * a stream splits into documents: directives, a byte order mark after the start, a lone CR, a
 * `...` outside a document, or text after a `...` marker.
 *
 * The block-scalar rules (which lines belong to the scalar, indentation, folding, chomping) are
 * ported line for line from the `yaml` package's lexer and resolver (yaml 2.9: parse/lexer.js
 * parseBlockScalar, compose/resolve-block-scalar.js); manifest-subset.test.ts checks the whole
 * reader against the full parser on thousands of generated documents.
 */
import {
  isScalar,
  parseDocument,
  type DocumentOptions,
  type ParseOptions,
  type ScalarTag,
  type SchemaOptions,
} from 'yaml';

/** One document of a source: `start`..`end` (offsets) covers it, beginning at a line start. */
export interface DocumentSpan {
  /** Where the document's text begins: a line start (0 for the first document). */
  start: number;
  /** Where it ends: the start of the next document's first line, or the text's length. */
  end: number;
  /** 0-based line number of `start`, to map positions inside the span back to the source. */
  line: number;
  /** First line (index) of the document's content: its `---` marker line or its first content line. */
  firstLine: number;
  /** One past its last line (index): a following `---` or `...` line is not part of its content. */
  endLine: number;
}

/** The document uses YAML outside the subset (or is malformed): read it with the full parser. */
export const OUTSIDE_SUBSET: unique symbol = Symbol('outside the manifest YAML subset');
/** The document holds only comments: the full parser reads it as null, which is skipped. */
export const EMPTY_DOCUMENT: unique symbol = Symbol('empty document');

/** Resolves a plain scalar as the full parser would; `atKey` as for a mapping key. */
export type PlainScalarResolver = (text: string, atKey: boolean) => unknown;

/**
 * The plain-scalar resolver of a schema: the first default tag whose test matches, as the `yaml`
 * package's composer picks it (compose-scalar.js findScalarTagByTest), else a string. Results are
 * cached: manifests repeat the same few values (`v1`, `ConfigMap`, label values) many times.
 */
export function plainScalarResolver(
  options: ParseOptions & DocumentOptions & SchemaOptions,
): PlainScalarResolver {
  const reference = parseDocument('', options);
  const tags = reference.schema.tags.filter((tag): tag is ScalarTag => !tag.collection && !!tag.test);
  const docOptions = reference.options;
  const keyCache = new Map<string, unknown>();
  const valueCache = new Map<string, unknown>();
  // One test for "matches any tag at all", built from the tags' own tests: most scalars (names,
  // images, label values) match none, and one regular expression answers that faster than a dozen.
  const candidates = tags.filter((tag) => tag.default === true || tag.default === 'key');
  // (Only where joining cannot change a test: no flags, no back-references or named groups.)
  const anyTag = candidates.every((tag) => tag.test!.flags === '' && !/\\[1-9k]|\(\?</.test(tag.test!.source))
    ? new RegExp(candidates.map((tag) => `(?:${tag.test!.source})`).join('|'))
    : undefined;
  const resolve = (text: string, atKey: boolean): unknown => {
    if (anyTag !== undefined && !anyTag.test(text)) return text;
    for (const tag of tags) {
      if ((tag.default === true || (atKey && tag.default === 'key')) && tag.test!.test(text)) {
        let failed = false;
        const resolved: unknown = tag.resolve!(
          text,
          () => {
            failed = true;
          },
          docOptions,
        );
        const value = isScalar(resolved) ? resolved.value : resolved;
        // Anything but a plain JS value (a merge key's symbol, a bigint, a failed resolution) is
        // left to the full parser.
        if (failed || (value !== null && typeof value !== 'number' && typeof value !== 'boolean'))
          return OUTSIDE_SUBSET;
        return value;
      }
    }
    return text;
  };
  return (text, atKey) => {
    const cache = atKey ? keyCache : valueCache;
    let value = cache.get(text);
    if (value === undefined && !cache.has(text)) {
      value = resolve(text, atKey);
      if (cache.size < 10_000) cache.set(text, value);
    }
    return value;
  };
}

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const HASH = 0x23;
const COLON = 0x3a;
const DASH = 0x2d;
const DOT = 0x2e;

/** Line kinds. */
const BLANK = 0;
const COMMENT = 1;
const CONTENT = 2;
/** A tab before the first character: indentation we do not read. */
const TABBED = 3;

/** Beyond this nesting a document goes to the full parser, which has its own answer for it. */
const MAX_DEPTH = 100;
/** The full parser refuses an implicit key longer than 1024 characters: leave those to it. */
const MAX_KEY_LENGTH = 1000;

/** The lines of a source: starts, ends (before any CR), indentation and kind. */
export interface Lines {
  text: string;
  start: Int32Array;
  end: Int32Array;
  indent: Int32Array;
  kind: Uint8Array;
}

function isEmptyChar(code: number): boolean {
  // NaN (past the end) counts, as the lexer's isEmpty(undefined) does.
  return code === SPACE || code === LF || code === CR || code === TAB || Number.isNaN(code);
}

function isMarker(text: string, at: number, char: number): boolean {
  return (
    text.charCodeAt(at) === char &&
    text.charCodeAt(at + 1) === char &&
    text.charCodeAt(at + 2) === char &&
    isEmptyChar(text.charCodeAt(at + 3))
  );
}

/** Only spaces then the end of the line or a comment, from `at`. */
function restIsEmpty(text: string, at: number, end: number): boolean {
  let k = at;
  while (k < end && text.charCodeAt(k) === SPACE) k++;
  return k === end || (text.charCodeAt(k) === HASH && k > at);
}

function scanLines(text: string): Lines {
  // Typed arrays sized by a first count: a 16 MiB source of empty lines is 16 M lines, and arrays
  // grown by push held ~1.5 GB at their peak where these hold ~210 MB.
  let count = 1;
  for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', nl + 1)) count++;
  const lines: Lines = {
    text,
    start: new Int32Array(count),
    end: new Int32Array(count),
    indent: new Int32Array(count),
    kind: new Uint8Array(count),
  };
  // A byte order mark at the very start is skipped, as the lexer does.
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (let i = 0; i < count; i++) {
    let nl = text.indexOf('\n', pos);
    if (nl === -1) nl = text.length;
    let end = nl;
    if (end > pos && text.charCodeAt(end - 1) === CR) end--;
    let k = pos;
    while (k < end && text.charCodeAt(k) === SPACE) k++;
    const first = text.charCodeAt(k);
    lines.start[i] = pos;
    lines.end[i] = end;
    lines.indent[i] = k - pos;
    lines.kind[i] =
      first === TAB || (k < end && first === CR)
        ? TABBED
        : k === end
          ? BLANK
          : first === HASH
            ? COMMENT
            : // After a byte order mark the full parser does not read indentation as we do.
              pos === 1 && k > pos
              ? TABBED
              : CONTENT;
    pos = nl + 1;
  }
  return lines;
}

/**
 * Splits a source into documents as the `yaml` package's lexer does, or answers undefined when
 * the source holds something that could change that split (then the full parser reads it all).
 */
export function splitDocuments(text: string): { lines: Lines; spans: DocumentSpan[] } | undefined {
  if (text.indexOf('\uFEFF', 1) !== -1 || /\r(?!\n)/.test(text)) return undefined;
  const lines = scanLines(text);
  const spans: DocumentSpan[] = [];
  const count = lines.start.length;
  let open: DocumentSpan | undefined;
  let sliceStart = 0;
  let sliceLine = 0;
  for (let i = 0; i < count; i++) {
    const at = lines.start[i]!;
    const first = text.charCodeAt(at);
    if (first === 0x25 /* % */) return undefined; // a directive
    if (isMarker(text, at, DASH)) {
      if (open) {
        open.end = at;
        open.endLine = i;
        spans.push(open);
        open = { start: at, end: 0, line: i, firstLine: i, endLine: 0 };
      } else {
        open = { start: sliceStart, end: 0, line: sliceLine, firstLine: i, endLine: 0 };
      }
    } else if (isMarker(text, at, DOT)) {
      if (!open || !restIsEmpty(text, at + 3, lines.end[i]!)) return undefined;
      const next = i + 1 < count ? lines.start[i + 1]! : text.length;
      open.end = next;
      open.endLine = i;
      spans.push(open);
      open = undefined;
      sliceStart = next;
      sliceLine = i + 1;
    } else if (!open && lines.kind[i] !== BLANK && lines.kind[i] !== COMMENT) {
      open = { start: sliceStart, end: 0, line: sliceLine, firstLine: i, endLine: 0 };
    }
  }
  if (open) {
    open.end = text.length;
    open.endLine = count;
    spans.push(open);
  }
  return { lines, spans };
}

/** Thrown inside the reader to abandon a document; caught in readSubsetDocument. */
const BAIL = { outside: true };
function bail(): never {
  throw BAIL;
}

/**
 * Reads one document of the subset: a mapping, EMPTY_DOCUMENT, or OUTSIDE_SUBSET. Never throws
 * for any input; its cost is linear in the document.
 */
export function readSubsetDocument(lines: Lines, span: DocumentSpan, resolve: PlainScalarResolver): unknown {
  try {
    return new SubsetReader(lines, span, resolve).document();
  } catch (err) {
    if (err === BAIL) return OUTSIDE_SUBSET;
    // The reader's own recursion is bounded by MAX_DEPTH; anything else is a bug to surface.
    throw err;
  }
}

class SubsetReader {
  private readonly text: string;
  private readonly start: Int32Array;
  private readonly end: Int32Array;
  private readonly indent: Int32Array;
  private readonly kind: Uint8Array;
  private readonly last: number;
  private depth = 0;
  /**
   * Where the node just read ends: `next`, the line after it (node readers); `after`, the offset
   * after it on its line (scalar readers), with `plain` for a flow scalar. Fields rather than
   * returned tuples: a tuple per node was most of the reader's garbage.
   */
  private next = 0;
  private after = 0;
  private plain = false;

  constructor(
    lines: Lines,
    private readonly span: DocumentSpan,
    private readonly resolve: PlainScalarResolver,
  ) {
    this.text = lines.text;
    this.start = lines.start;
    this.end = lines.end;
    this.indent = lines.indent;
    this.kind = lines.kind;
    this.last = span.endLine;
  }

  document(): unknown {
    let first = this.span.firstLine;
    if (first < this.last && isMarker(this.text, this.start[first]!, DASH)) {
      // `--- # comment` only: a node on the marker line (`--- |`, `--- {a: 1}`) is not read here.
      if (!restIsEmpty(this.text, this.start[first]! + 3, this.end[first]!)) bail();
      first++;
    }
    const line = this.nextContent(first);
    if (line >= this.last) return EMPTY_DOCUMENT;
    const indent = this.indent[line]!;
    if (this.isSeqEntry(line, this.start[line]! + indent)) bail(); // a list document: not a manifest
    const value = this.mapping(line, this.start[line]! + indent, indent);
    if (this.next < this.last) bail();
    return value;
  }

  /** The next line at or after `line` with content (comments and blank lines skipped). */
  private nextContent(line: number): number {
    let i = line;
    while (i < this.last) {
      const kind = this.kind[i]!;
      if (kind === CONTENT) return i;
      if (kind === TABBED) bail();
      i++;
    }
    return this.last;
  }

  private isSeqEntry(line: number, at: number): boolean {
    if (this.text.charCodeAt(at) !== DASH) return false;
    if (at + 1 === this.end[line]) return true;
    const next = this.text.charCodeAt(at + 1);
    if (next === TAB) bail();
    return next === SPACE;
  }

  private enter(): void {
    if (++this.depth > MAX_DEPTH) bail();
  }

  /**
   * A block mapping whose keys sit at column `indent`; its first key is at offset `at` of `line`
   * (mid-line after `- `). `next` is then the next content line after it.
   */
  private mapping(line: number, at: number, indent: number): Record<string, unknown> {
    this.enter();
    const text = this.text;
    const object: Record<string, unknown> = {};
    let i = line;
    let k = at;
    for (;;) {
      const lineEnd = this.end[i]!;
      let key: string;
      let colon: number;
      const first = text.charCodeAt(k);
      if (first === 0x22 /* " */ || first === 0x27 /* ' */) {
        key = first === 0x22 ? this.doubleQuoted(k, lineEnd) : this.singleQuoted(k, lineEnd);
        colon = this.after;
        if (text.charCodeAt(colon) !== COLON || !isSeparator(text, colon + 1, lineEnd)) bail();
      } else {
        colon = this.implicitKeyColon(k, lineEnd);
        if (colon === -1 || !plainStarts(text, k, lineEnd, false)) bail();
        if (text.charCodeAt(colon - 1) === SPACE) bail();
        key = text.slice(k, colon);
        if (typeof this.resolve(key, true) !== 'string') bail();
      }
      if (colon - k > MAX_KEY_LENGTH) bail();
      let v = colon + 1;
      while (v < lineEnd && text.charCodeAt(v) === SPACE) v++;
      const value =
        v === lineEnd || text.charCodeAt(v) === HASH
          ? this.below(i + 1, indent, true)
          : this.inline(i, v, indent);
      const next = this.next;
      setKey(object, key, value);
      const following = this.nextContent(next);
      if (following >= this.last || this.indent[following]! < indent) {
        this.depth--;
        this.next = following;
        return object;
      }
      if (this.indent[following]! > indent) bail();
      k = this.start[following]! + indent;
      if (this.isSeqEntry(following, k)) bail();
      i = following;
    }
  }

  /** A block sequence whose `-` sit at column `indent`, the first at offset `at` of `line`. */
  private sequence(line: number, at: number, indent: number): unknown[] {
    this.enter();
    const text = this.text;
    const items: unknown[] = [];
    let i = line;
    let k = at;
    for (;;) {
      const lineEnd = this.end[i]!;
      let v = k + 1;
      while (v < lineEnd && text.charCodeAt(v) === SPACE) v++;
      let item: unknown;
      if (v === lineEnd || text.charCodeAt(v) === HASH) item = this.below(i + 1, indent, false);
      else if (this.isSeqEntry(i, v)) item = this.sequence(i, v, v - this.start[i]!);
      else if (this.startsKey(v, lineEnd)) item = this.mapping(i, v, v - this.start[i]!);
      else item = this.inline(i, v, indent);
      const next = this.next;
      items.push(item);
      const following = this.nextContent(next);
      // A key at the sequence's column ends it too: the sequence was the value of the key above.
      if (
        following >= this.last ||
        this.indent[following]! < indent ||
        (this.indent[following] === indent && !this.isSeqEntry(following, this.start[following]! + indent))
      ) {
        this.depth--;
        this.next = following;
        return items;
      }
      if (this.indent[following]! > indent) bail();
      k = this.start[following]! + indent;
      i = following;
    }
  }

  /**
   * The value of a key (or `-`) with nothing after it on its line: a block collection on the lines
   * below, indented more than `indent` (a sequence may also sit at a key's own column), else null.
   */
  private below(line: number, indent: number, ofKey: boolean): unknown {
    const next = this.nextContent(line);
    this.next = next;
    if (next >= this.last) return null;
    const nextIndent = this.indent[next]!;
    const at = this.start[next]! + nextIndent;
    if (nextIndent > indent) {
      if (this.isSeqEntry(next, at)) return this.sequence(next, at, nextIndent);
      if (!this.startsKey(at, this.end[next]!)) bail(); // a scalar on its own line(s)
      return this.mapping(next, at, nextIndent);
    }
    if (nextIndent === indent && ofKey && this.isSeqEntry(next, at)) return this.sequence(next, at, indent);
    return null;
  }

  /** Whether a mapping key starts at `at`: a scalar followed by `:` and a space or the line's end. */
  private startsKey(at: number, lineEnd: number): boolean {
    const text = this.text;
    const first = text.charCodeAt(at);
    if (first === 0x22 || first === 0x27) {
      if (first === 0x22) this.doubleQuoted(at, lineEnd);
      else this.singleQuoted(at, lineEnd);
      return text.charCodeAt(this.after) === COLON && isSeparator(text, this.after + 1, lineEnd);
    }
    return this.implicitKeyColon(at, lineEnd) !== -1;
  }

  /** The `:` ending a plain implicit key that starts at `at`, or -1 when the line holds none. */
  private implicitKeyColon(at: number, lineEnd: number): number {
    const text = this.text;
    for (let k = at; k < lineEnd; k++) {
      const c = text.charCodeAt(k);
      if (c === COLON) {
        if (isSeparator(text, k + 1, lineEnd)) return k;
      } else if (c === SPACE) {
        if (text.charCodeAt(k + 1) === HASH) return -1;
      } else if (c === TAB) {
        bail();
      }
    }
    return -1;
  }

  /**
   * A value that starts on the current line at `at`: a scalar, a one-line flow collection or a
   * block scalar. `indent` is the column of the mapping's keys or of the sequence's `-`.
   */
  private inline(line: number, at: number, indent: number): unknown {
    const text = this.text;
    const lineEnd = this.end[line]!;
    const first = text.charCodeAt(at);
    if (first === 0x7c /* | */ || first === 0x3e /* > */) return this.blockScalar(line, at, indent);
    let value: unknown;
    let after: number;
    if (first === 0x5b /* [ */ || first === 0x7b /* { */) {
      value = this.flow(at, lineEnd);
      after = this.after;
    } else if (first === 0x22 || first === 0x27) {
      value = first === 0x22 ? this.doubleQuoted(at, lineEnd) : this.singleQuoted(at, lineEnd);
      after = this.after;
    } else {
      if (!plainStarts(text, at, lineEnd, false)) bail();
      let end = at;
      let k = at;
      for (; k < lineEnd; k++) {
        const c = text.charCodeAt(k);
        if (c === SPACE) {
          if (text.charCodeAt(k + 1) === HASH) break;
        } else if (c === TAB) {
          bail();
        } else if (c === COLON && isSeparator(text, k + 1, lineEnd)) {
          bail(); // `a: b: c`, a mapping where the full parser refuses one
        } else {
          end = k + 1;
        }
      }
      value = this.resolve(text.slice(at, end), false);
      if (value === OUTSIDE_SUBSET) bail();
      after = k;
    }
    if (!restIsEmpty(text, after, lineEnd)) bail();
    this.next = line + 1;
    return value;
  }

  /** A double-quoted scalar on one line: its value (`after`: the offset after its closing quote). */
  private doubleQuoted(at: number, lineEnd: number): string {
    const text = this.text;
    let escaped = false;
    let k = at + 1;
    for (;;) {
      if (k >= lineEnd) bail(); // continues on the next line
      const c = text.charCodeAt(k);
      if (c === 0x5c /* \ */) {
        escaped = true;
        k += 2;
      } else if (c === 0x22) {
        break;
      } else {
        k++;
      }
    }
    const body = text.slice(at + 1, k);
    this.after = k + 1;
    return escaped ? unescapeDoubleQuoted(body) : body;
  }

  /** A single-quoted scalar on one line (`''` is a quote). */
  private singleQuoted(at: number, lineEnd: number): string {
    const text = this.text;
    let k = at + 1;
    let doubled = false;
    for (;;) {
      k = text.indexOf("'", k);
      if (k === -1 || k >= lineEnd) bail();
      if (text.charCodeAt(k + 1) === 0x27 && k + 1 < lineEnd) {
        doubled = true;
        k += 2;
      } else {
        break;
      }
    }
    const body = text.slice(at + 1, k);
    this.after = k + 1;
    return doubled ? body.replace(/''/g, "'") : body;
  }

  /** `[a, b]` or `{k: v, …}` of scalars, on one line. */
  private flow(at: number, lineEnd: number): unknown {
    const text = this.text;
    const isMap = text.charCodeAt(at) === 0x7b;
    const close = isMap ? 0x7d : 0x5d;
    const object: Record<string, unknown> = {};
    const items: unknown[] = [];
    let k = skipSpaces(text, at + 1, lineEnd);
    if (text.charCodeAt(k) === close) {
      this.after = k + 1;
      return isMap ? object : items;
    }
    for (;;) {
      if (isMap) {
        const key = this.flowScalar(k, lineEnd);
        const afterKey = this.after;
        if (text.charCodeAt(afterKey) !== COLON || text.charCodeAt(afterKey + 1) !== SPACE) bail();
        if (this.plain && typeof this.resolve(key, true) !== 'string') bail();
        const raw = this.flowScalar(skipSpaces(text, afterKey + 1, lineEnd), lineEnd);
        const afterValue = this.after;
        const value = this.plain ? this.resolve(raw, false) : raw;
        if (value === OUTSIDE_SUBSET) bail();
        setKey(object, key, value);
        k = skipSpaces(text, afterValue, lineEnd);
      } else {
        const raw = this.flowScalar(k, lineEnd);
        const value = this.plain ? this.resolve(raw, false) : raw;
        if (value === OUTSIDE_SUBSET) bail();
        items.push(value);
        k = skipSpaces(text, this.after, lineEnd);
        if (text.charCodeAt(k) === COLON) bail(); // `[a: b]`, a pair inside a sequence
      }
      const c = text.charCodeAt(k);
      if (c === close) {
        this.after = k + 1;
        return isMap ? object : items;
      }
      if (c !== 0x2c /* , */ || k >= lineEnd) bail();
      k = skipSpaces(text, k + 1, lineEnd);
      if (text.charCodeAt(k) === close) bail(); // a trailing comma: left to the full parser
    }
  }

  /** A scalar inside a flow collection: its text, unresolved when `plain`; `after`: where it ends. */
  private flowScalar(at: number, lineEnd: number): string {
    const text = this.text;
    const first = text.charCodeAt(at);
    this.plain = false;
    if (first === 0x22) return this.doubleQuoted(at, lineEnd);
    if (first === 0x27) return this.singleQuoted(at, lineEnd);
    if (!plainStarts(text, at, lineEnd, true)) bail();
    let end = at;
    let k = at;
    for (; k < lineEnd; k++) {
      const c = text.charCodeAt(k);
      if (c === SPACE) {
        if (text.charCodeAt(k + 1) === HASH) bail(); // a comment inside a flow collection
      } else if (c === TAB) {
        bail();
      } else if (c === 0x2c || c === 0x5b || c === 0x5d || c === 0x7b || c === 0x7d) {
        break;
      } else if (c === COLON) {
        const n = text.charCodeAt(k + 1);
        if (
          isSeparator(text, k + 1, lineEnd) ||
          n === 0x2c ||
          n === 0x5b ||
          n === 0x5d ||
          n === 0x7b ||
          n === 0x7d
        )
          break;
        end = k + 1;
      } else {
        end = k + 1;
      }
    }
    if (k >= lineEnd) bail(); // the collection continues on the next line
    this.after = end;
    this.plain = true;
    return text.slice(at, end);
  }

  /**
   * A literal or folded block scalar whose header is at `at`; `indent` is its parent's column
   * (the mapping's keys or the sequence's `-`), as the full parser's scalar.indent.
   */
  private blockScalar(line: number, at: number, indent: number): string {
    const text = this.text;
    const lineEnd = this.end[line]!;
    const folded = text.charCodeAt(at) === 0x3e;
    let explicit = 0;
    let chomp = '';
    let k = at + 1;
    for (; k < lineEnd && k < at + 3; k++) {
      const c = text.charCodeAt(k);
      if ((c === 0x2b || c === DASH) && !chomp) chomp = c === DASH ? '-' : '+';
      else if (c > 0x30 && c <= 0x39 && !explicit) explicit = c - 0x30;
      else break;
    }
    if (!(k === lineEnd || (text.charCodeAt(k) === SPACE && restIsEmpty(text, k, lineEnd)))) bail();
    if (line + 1 >= this.start.length) bail(); // a header on the text's last line
    // The lexer (parseBlockScalar): which lines are the scalar's.
    const pos = this.start[line + 1]!;
    const indentNext = indent + 1;
    let nl = pos - 1;
    let firstIndent = 0;
    let i = pos;
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === SPACE) firstIndent++;
      else if (c === LF) {
        nl = i;
        firstIndent = 0;
      } else if (c === CR && text.charCodeAt(i + 1) === LF) continue;
      else break;
    }
    if (firstIndent >= indentNext) {
      const threshold = explicit === 0 ? firstIndent : explicit - 1 + indentNext;
      do {
        const cs = continueBlockScalar(text, nl + 1, threshold);
        if (cs === -1) break;
        nl = text.indexOf('\n', cs);
      } while (nl !== -1);
      if (nl === -1) nl = text.length;
    }
    let t = nl + 1;
    while (text.charCodeAt(t) === SPACE) t++;
    if (text.charCodeAt(t) === TAB) bail(); // the lexer takes such tabs in, to refuse them
    if (chomp !== '+') {
      for (;;) {
        let b = nl - 1;
        let c = text.charCodeAt(b);
        if (c === CR) c = text.charCodeAt(--b);
        const lastChar = b;
        while (c === SPACE) c = text.charCodeAt(--b);
        if (c === LF && b >= pos && b + 1 + firstIndent > lastChar) nl = b;
        else break;
      }
    }
    const sourceEnd = Math.min(nl + 1, text.length);
    const value = blockScalarValue(text.slice(pos, sourceEnd), folded, chomp, explicit, indent);
    let next = line + 1;
    while (next < this.start.length && this.start[next]! < sourceEnd) next++;
    if (next > this.last) bail();
    this.next = next;
    return value;
  }
}

/**
 * Adds a key to a mapping being read; a key it holds already is left to the full parser, which
 * names it. As the `yaml` package's toJS does (addPairToJSMap), an inherited name such as
 * `__proto__` becomes an own property instead of changing the prototype.
 */
function setKey(object: Record<string, unknown>, key: string, value: unknown): void {
  if (!(key in object)) {
    object[key] = value;
    return;
  }
  if (Object.prototype.hasOwnProperty.call(object, key)) bail();
  Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
}

/** `:` (or a flow entry) followed by a space or the line's end: a mapping indicator. */
function isSeparator(text: string, at: number, lineEnd: number): boolean {
  if (at >= lineEnd) return true;
  const c = text.charCodeAt(at);
  if (c === TAB) bail();
  return c === SPACE;
}

function skipSpaces(text: string, at: number, lineEnd: number): number {
  let k = at;
  while (k < lineEnd && text.charCodeAt(k) === SPACE) k++;
  return k;
}

/**
 * Whether a plain scalar may start at `at` in the subset: not with an indicator (anchors, tags,
 * aliases, reserved characters, `?` and `:` forms are the full parser's), `-` only before text.
 */
function plainStarts(text: string, at: number, lineEnd: number, inFlow: boolean): boolean {
  const c = text.charCodeAt(at);
  switch (c) {
    case DASH: {
      if (at + 1 >= lineEnd) return false;
      const n = text.charCodeAt(at + 1);
      return !(
        n === SPACE ||
        n === TAB ||
        (inFlow && (n === 0x2c || n === 0x5b || n === 0x5d || n === 0x7b || n === 0x7d))
      );
    }
    case SPACE:
    case TAB:
    case HASH:
    case 0x26: // &
    case 0x2a: // *
    case 0x21: // !
    case 0x7c: // |
    case 0x3e: // >
    case 0x27: // '
    case 0x22: // "
    case 0x25: // %
    case 0x40: // @
    case 0x60: // `
    case 0x5b: // [
    case 0x5d: // ]
    case 0x7b: // {
    case 0x7d: // }
    case 0x2c: // ,
    case 0x3f: // ?
    case COLON:
      return false;
    default:
      return at < lineEnd;
  }
}

/** The lexer's continueScalar for a block scalar (indentNext > 0): where a continuing line's text starts, or -1. */
function continueBlockScalar(text: string, offset: number, threshold: number): number {
  let indent = 0;
  let c = text.charCodeAt(offset);
  while (c === SPACE) c = text.charCodeAt(++indent + offset);
  if (c === CR && text.charCodeAt(indent + offset + 1) === LF) return offset + indent + 1;
  return c === LF || indent >= threshold ? offset + indent : -1;
}

/**
 * The `yaml` package's resolveBlockScalar, with every error left to the full parser: the value of
 * a block scalar from its source lines, `indent` being its parent's column.
 */
function blockScalarValue(
  source: string,
  folded: boolean,
  chomp: string,
  explicit: number,
  indent: number,
): string {
  const lines = source ? splitBlockLines(source) : [];
  let chompStart = lines.length;
  for (let i = lines.length - 1; i >= 0; --i) {
    const content = lines[i]![1];
    if (content === '' || content === '\r') chompStart = i;
    else break;
  }
  if (chompStart === 0)
    return chomp === '+' && lines.length > 0 ? '\n'.repeat(Math.max(1, lines.length - 1)) : '';
  let trimIndent = indent + explicit;
  let contentStart = 0;
  for (let i = 0; i < chompStart; ++i) {
    const [lineIndent, content] = lines[i]!;
    if (content === '' || content === '\r') {
      if (explicit === 0 && lineIndent.length > trimIndent) trimIndent = lineIndent.length;
    } else {
      if (lineIndent.length < trimIndent) bail();
      if (explicit === 0) trimIndent = lineIndent.length;
      contentStart = i;
      if (trimIndent === 0) bail();
      break;
    }
  }
  for (let i = lines.length - 1; i >= chompStart; --i) {
    if (lines[i]![0].length > trimIndent) chompStart = i + 1;
  }
  let value = '';
  let sep = '';
  let prevMoreIndented = false;
  for (let i = 0; i < contentStart; ++i) value += lines[i]![0].slice(trimIndent) + '\n';
  for (let i = contentStart; i < chompStart; ++i) {
    const [lineIndent, raw] = lines[i]!;
    const content = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (content && lineIndent.length < trimIndent) bail();
    if (!folded) {
      value += sep + lineIndent.slice(trimIndent) + content;
      sep = '\n';
    } else if (lineIndent.length > trimIndent || content[0] === '\t') {
      if (sep === ' ') sep = '\n';
      else if (!prevMoreIndented && sep === '\n') sep = '\n\n';
      value += sep + lineIndent.slice(trimIndent) + content;
      sep = '\n';
      prevMoreIndented = true;
    } else if (content === '') {
      if (sep === '\n') value += '\n';
      else sep = '\n';
    } else {
      value += sep + content;
      sep = ' ';
      prevMoreIndented = false;
    }
  }
  if (chomp === '+') {
    for (let i = chompStart; i < lines.length; ++i) value += '\n' + lines[i]![0].slice(trimIndent);
    if (value[value.length - 1] !== '\n') value += '\n';
  } else if (chomp !== '-') {
    value += '\n';
  }
  return value;
}

/** resolve-block-scalar.js splitLines: `[indentation, rest]` per line. */
function splitBlockLines(source: string): [string, string][] {
  const split = source.split(/\n( *)/);
  const first = split[0]!;
  const m = /^( *)/.exec(first);
  const lines: [string, string][] = [m?.[1] ? [m[1], first.slice(m[1].length)] : ['', first]];
  for (let i = 1; i < split.length; i += 2) lines.push([split[i]!, split[i + 1]!]);
  return lines;
}

const ESCAPES: Record<string, string> = {
  '0': '\0',
  a: '\x07',
  b: '\b',
  e: '\x1b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  N: '\u0085',
  _: '\u00a0',
  L: '\u2028',
  P: '\u2029',
  ' ': ' ',
  '"': '"',
  '/': '/',
  '\\': '\\',
  '\t': '\t',
};

/** resolve-flow-scalar.js doubleQuotedValue for one line; an invalid escape is the full parser's. */
function unescapeDoubleQuoted(body: string): string {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    const next = body[++i];
    if (next === undefined) bail();
    const simple = ESCAPES[next];
    if (simple !== undefined) {
      out += simple;
    } else if (next === 'x' || next === 'u' || next === 'U') {
      const length = next === 'x' ? 2 : next === 'u' ? 4 : 8;
      const digits = body.substr(i + 1, length);
      if (digits.length !== length || !/^[0-9a-fA-F]+$/.test(digits)) bail();
      const code = parseInt(digits, 16);
      if (code > 0x10ffff) bail();
      out += String.fromCodePoint(code);
      i += length;
    } else {
      bail();
    }
  }
  return out;
}
