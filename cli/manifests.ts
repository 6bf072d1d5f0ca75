/**
 * Reading manifests: `-f` files, directories (*.yaml, *.yml, *.json, sorted, not recursive) and `-`
 * (stdin); each source may hold many YAML documents, and a `kind: List` expands into its items.
 *
 * Every error names where it is: `app.yaml: document 2 (line 10, column 7): spec.replicas: …`.
 * Field errors from local validation or from the server carry a field path
 * (`spec.template.spec.containers[0].image`); `ManifestDocument.locate` maps it back to the YAML
 * node, or to its nearest existing parent when the field is missing.
 */
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  Composer,
  Lexer,
  LineCounter,
  Parser,
  YAMLParseError,
  isMap,
  isPair,
  isScalar,
  isSeq,
  parseAllDocuments,
  type CST,
  type Document,
  type DocumentOptions,
  type Node,
  type ParseOptions,
  type SchemaOptions,
  type ScalarTag,
} from 'yaml';
import { InvalidArgumentError, errorMessage } from '../proto/errors.js';
import {
  EMPTY_DOCUMENT,
  OUTSIDE_SUBSET,
  plainScalarResolver,
  readSubsetDocument,
  splitDocuments,
  type DocumentSpan,
  type PlainScalarResolver,
} from './manifest-subset.js';

export interface ManifestSource {
  /** File path, or `<stdin>`. */
  name: string;
  text: string;
}

export interface SourcePosition {
  line: number;
  column: number;
}

export type ManifestObject = Record<string, unknown>;

export interface ManifestDocument {
  source: string;
  /** 1-based index of the YAML document in its source. */
  documentIndex: number;
  /** For an item of a `kind: List`, its path inside the document (`['items', 2]`). */
  pathPrefix: (string | number)[];
  object: ManifestObject;
  /** Where a field path (`spec.containers[0].image`) sits in the source. */
  locate(fieldPath: string | undefined): SourcePosition;
}

/** A manifest problem with its location; `field` is the path inside the object. */
export class ManifestError extends InvalidArgumentError {
  constructor(
    message: string,
    readonly source: string,
    readonly documentIndex: number,
    readonly position: SourcePosition | undefined,
    field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, field, options);
  }
}

const MANIFEST_EXTENSIONS = /\.(ya?ml|json)$/i;
/** Large enough for any real manifest set; bounds memory against a hostile stdin or file. */
const MAX_SOURCE_BYTES = 16 * 1024 * 1024;

/** Expands `-f` arguments into sources: files as named, directories' manifest files sorted. */
export async function readManifestSources(
  paths: string[],
  readStdin: () => Promise<string> = readAllStdin,
): Promise<ManifestSource[]> {
  if (paths.length === 0)
    throw new InvalidArgumentError('read manifests: no -f given: pass a file, a directory or -', 'filename');
  const sources: ManifestSource[] = [];
  let stdinUsed = false;
  for (const path of paths) {
    if (path === '-') {
      if (stdinUsed)
        throw new InvalidArgumentError(
          'read manifests: `-f -` given twice: stdin can be read once',
          'filename',
        );
      stdinUsed = true;
      sources.push({ name: '<stdin>', text: await readStdin() });
      continue;
    }
    let isDirectory: boolean;
    try {
      isDirectory = statSync(path).isDirectory();
    } catch (err) {
      throw new InvalidArgumentError(`read manifests ${path}: ${describeFsError(err)}`, 'filename', {
        cause: err,
      });
    }
    if (isDirectory) {
      const names = readdirSync(path)
        .filter((name) => MANIFEST_EXTENSIONS.test(name))
        .sort();
      if (names.length === 0) {
        throw new InvalidArgumentError(
          `read manifests ${path}: directory holds no *.yaml, *.yml or *.json file`,
          'filename',
        );
      }
      for (const name of names) {
        const file = join(path, name);
        if (statSync(file).isFile()) sources.push({ name: file, text: readSourceFile(file) });
      }
    } else {
      sources.push({ name: path, text: readSourceFile(path) });
    }
  }
  return sources;
}

/**
 * Reads a regular file of at most MAX_SOURCE_BYTES. Opened without blocking and checked on the
 * descriptor, so `-f /dev/zero`, a FIFO or a file swapped in after a stat is refused rather than
 * read without end; the read itself stops past the limit in case the file grows meanwhile.
 */
function readSourceFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw new InvalidArgumentError(`read manifests ${path}: ${describeFsError(err)}`, 'filename', {
      cause: err,
    });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      throw new InvalidArgumentError(
        `read manifests ${path}: not a regular file; pass a manifest file, a directory, or - for stdin`,
        'filename',
      );
    }
    const tooLarge = (): never => {
      throw new InvalidArgumentError(
        `read manifests ${path}: larger than the ${MAX_SOURCE_BYTES} bytes allowed; split it into several files`,
        'filename',
      );
    };
    if (stat.size > MAX_SOURCE_BYTES) tooLarge();
    const buffer = Buffer.alloc(MAX_SOURCE_BYTES + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
      if (length > MAX_SOURCE_BYTES) tooLarge();
    }
    return buffer.toString('utf8', 0, length);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw new InvalidArgumentError(`read manifests ${path}: ${describeFsError(err)}`, 'filename', {
      cause: err,
    });
  } finally {
    closeSync(fd);
  }
}

function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES') return 'permission denied';
  return errorMessage(err);
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    total += buf.length;
    if (total > MAX_SOURCE_BYTES) {
      throw new InvalidArgumentError(
        `read manifests <stdin>: more than ${MAX_SOURCE_BYTES} bytes`,
        'filename',
      );
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** `0o17`: Go's integer syntax, which kubectl's YAML reader (go-yaml v2 over strconv) accepts. */
const GO_OCTAL: ScalarTag = {
  identify: (value) => typeof value === 'number',
  default: true,
  tag: 'tag:yaml.org,2002:int',
  format: 'OCT',
  test: /^[-+]?0o[0-7_]+$/,
  resolve: (text) => {
    const value = parseInt(text.replace(/[-+_]|0o/g, ''), 8);
    return text.startsWith('-') ? -value : value;
  },
};

/**
 * Manifests are read as kubectl reads them (sigs.k8s.io/yaml over go-yaml v2): YAML 1.1, so
 * `defaultMode: 0400` is octal 256, `yes`/`on`/`y` are true, `<<` merges; but, as go-yaml v2,
 * no base-60 numbers (`22:22` stays a string) and no timestamps (they stay strings). Duplicate keys
 * are refused, checked in linear time by findDuplicateKey (the parser's own check is quadratic).
 */
export const KUBERNETES_YAML: ParseOptions & DocumentOptions & SchemaOptions = {
  version: '1.1',
  merge: true,
  uniqueKeys: false,
  customTags: (tags) => [
    GO_OCTAL,
    ...tags.filter(
      (tag) =>
        !(typeof tag === 'object' && (tag.format === 'TIME' || tag.tag === 'tag:yaml.org,2002:timestamp')),
    ),
  ],
};

/** The first key that appears twice in one mapping, with the node to blame; linear in the document. */
function findDuplicateKey(root: unknown): { key: string; node: Node } | undefined {
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const node = pending.pop();
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        // `<<` (a symbol once resolved) may repeat: each merges its own mapping.
        if (isScalar(pair.key) && typeof pair.key.value !== 'symbol') {
          const key = String(pair.key.value);
          if (seen.has(key)) return { key, node: pair.key };
          seen.add(key);
        }
        pending.push(pair.value);
      }
    } else if (isSeq(node)) {
      pending.push(...node.items);
    } else if (isPair(node)) {
      pending.push(node.value);
    }
  }
  return undefined;
}

const TOO_DEEP = 'too deeply nested: the document nests mappings and lists deeper than can be read';

/** The parser's message, except where it reports its own limit rather than the text's fault. */
function describeSyntaxError(message: string): string {
  // The parser recurses per level of nesting; at the stack's end it reports the RangeError.
  if (/Maximum call stack size exceeded/.test(message)) return TOO_DEEP;
  return `YAML syntax error: ${firstLine(message)}`;
}

/**
 * Parses one source into its documents. Empty documents (a trailing `---`) are skipped. Throws
 * ManifestError at the first syntax error or non-object document.
 *
 * Documents in the YAML subset manifests are written in are read by manifest-subset.ts, 7-10 times
 * faster than by the `yaml` package (issue 9: 2,000 ConfigMaps took ~450 ms of CPU to parse in a
 * fresh process, ~250 ms warm; now ~60 and ~30 ms); every other document is read by the full
 * parser from where it starts (readFromDocument), and from the first one that fails there the rest
 * of the source is judged exactly as a whole source is, so results, errors and positions are the
 * full parser's. A fast document's `locate` parses its span with the full parser when first asked,
 * which only an error does.
 */
export function parseManifestSource(source: ManifestSource): ManifestDocument[] {
  const { text } = source;
  const split = splitDocuments(text);
  if (split === undefined) return readWithYaml(source, text, 0, 0);
  const resolve = (plainScalars ??= plainScalarResolver(KUBERNETES_YAML));
  const out: ManifestDocument[] = [];
  for (let i = 0; i < split.spans.length; i++) {
    const span = split.spans[i]!;
    const value = readSubsetDocument(split.lines, span, resolve);
    if (value === EMPTY_DOCUMENT) continue;
    if (value !== OUTSIDE_SUBSET && acceptedAsIs(value)) {
      out.push(...manifestDocuments(source.name, i + 1, value, lazyLocator(text, span)));
      continue;
    }
    const read = readFromDocument(source, span, i);
    out.push(...read.documents);
    if (read.rest) return out;
  }
  return out;
}

let plainScalars: PlainScalarResolver | undefined;

/** A value the full path would accept without an error: a mapping (a List of mappings). */
function acceptedAsIs(value: unknown): value is ManifestObject {
  if (!isPlainObject(value)) return false;
  return !(value.kind === 'List' && Array.isArray(value.items) && !value.items.every(isPlainObject));
}

/**
 * Reads the document at `span` (the `index`th, 0-based) with the full parser, lexing the source
 * from there on one token at a time. When the document reads without an error and the parser ends
 * it where the span ends, its manifests are returned and the rest of the source is left to the
 * caller (`rest: false`). Otherwise the same pass goes on to the end of the source and everything
 * from this document on is judged as parseAllDocuments and today's checks judge a whole source
 * (`rest: true`, or it throws that error): each source position is parsed once either way, so an
 * odd or hostile document costs what it did before the fast path.
 *
 * The documents are composed one by one, each by a Composer of its own, so an error token the
 * parser meets between two documents can be filed where the Composer of a whole source files it
 * (composer.js, case 'error'): under the document before, which may be the one before `span`.
 */
function readFromDocument(
  source: ManifestSource,
  span: DocumentSpan,
  index: number,
): { documents: ManifestDocument[]; rest: boolean } {
  const text = source.text.slice(span.start);
  const spanLength = span.end - span.start;
  const options = { ...KUBERNETES_YAML, lineCounter: new LineCounter(), prettyErrors: false };
  const lineCounter = options.lineCounter;
  const parser = new Parser(lineCounter.addNewLine);
  const docs: Document.Parsed[] = [];
  /** Errors before the first document: the previous document's (index > 0), else the first one's. */
  const before: YAMLParseError[] = [];
  const take = (token: CST.Token): void => {
    if (token.type === 'document') {
      const [doc] = Array.from(new Composer(options).compose([token]));
      if (docs.length === 0 && index === 0) doc!.errors.unshift(...before.splice(0));
      docs.push(doc!);
    } else if (token.type === 'error') {
      const message = token.source ? `${token.message}: ${JSON.stringify(token.source)}` : token.message;
      const error = new YAMLParseError(
        [token.offset, token.offset + (token.source?.length ?? 1)],
        'UNEXPECTED_TOKEN',
        message,
      );
      if (docs.length > 0) docs[docs.length - 1]!.errors.push(error);
      else before.push(error);
    }
    // Comments, newlines, spaces and `...` (splitDocuments refuses text after it) hold no value.
  };
  let deciding = span.end < source.text.length;
  try {
    lineCounter.addNewLine(0); // as Parser.parse does first
    for (const lexeme of new Lexer().lex(text)) {
      const at = parser.offset;
      for (const token of parser.next(lexeme)) take(token);
      if (deciding && at >= spanLength) {
        // Past the span: the document is complete, with every error the parser files under it.
        deciding = false;
        const accepted = docs.length === 1 && before.length === 0 && docs[0]!.errors.length === 0;
        if (accepted) {
          try {
            return {
              documents: documentsOf(source.name, docs[0]!, lineCounter, span.line, index + 1),
              rest: false,
            };
          } catch (err) {
            // Refused: a later document's parser failure would win, as for a whole source.
            if (!(err instanceof ManifestError)) throw err;
          }
        }
      }
    }
    for (const token of parser.end()) take(token);
  } catch (err) {
    // The parser recurses per nesting level: hostile nesting ends here, not in a crash.
    throw new ManifestError(`${source.name}: cannot parse: ${errorMessage(err)}`, source.name, 0, undefined);
  }
  const previous = index > 0 ? before[0] : undefined;
  if (previous) {
    // The previous document, read without an error, has this one as its first.
    const pos = lineCounter.linePos(previous.pos[0]);
    const position = { line: pos.line + span.line, column: pos.col };
    throw new ManifestError(
      `${where(source.name, index, position)}: ${describeSyntaxError(previous.message)}`,
      source.name,
      index,
      position,
    );
  }
  const documents: ManifestDocument[] = [];
  docs.forEach((doc, k) => {
    documents.push(...documentsOf(source.name, doc, lineCounter, span.line, index + k + 1));
  });
  return { documents, rest: true };
}

/**
 * The full parser's reading of `text`, a source or its tail from a document's first line:
 * `lineOffset` lines and `indexOffset` documents precede it in the source.
 */
function readWithYaml(
  source: ManifestSource,
  text: string,
  lineOffset: number,
  indexOffset: number,
): ManifestDocument[] {
  const lineCounter = new LineCounter();
  let parsed: ReturnType<typeof parseAllDocuments>;
  try {
    parsed = parseAllDocuments(text, { ...KUBERNETES_YAML, lineCounter, prettyErrors: false });
  } catch (err) {
    // The parser recurses per nesting level: hostile nesting ends here, not in a crash.
    throw new ManifestError(`${source.name}: cannot parse: ${errorMessage(err)}`, source.name, 0, undefined);
  }
  // A stream with no documents at all (empty file, comments only) parses to an empty list.
  const docs = Array.isArray(parsed) ? parsed : [];
  const out: ManifestDocument[] = [];
  docs.forEach((doc, i) => {
    out.push(...documentsOf(source.name, doc, lineCounter, lineOffset, indexOffset + i + 1));
  });
  return out;
}

/** The manifests of one parsed document; throws ManifestError for a syntax error or a non-object. */
function documentsOf(
  sourceName: string,
  doc: Document,
  lineCounter: LineCounter,
  lineOffset: number,
  documentIndex: number,
): ManifestDocument[] {
  const positionOf = (offset: number): SourcePosition => {
    const pos = lineCounter.linePos(offset);
    return { line: pos.line + lineOffset, column: pos.col };
  };
  const syntaxError = doc.errors[0];
  if (syntaxError) {
    const position = positionOf(syntaxError.pos[0]);
    throw new ManifestError(
      `${where(sourceName, documentIndex, position)}: ${describeSyntaxError(syntaxError.message)}`,
      sourceName,
      documentIndex,
      position,
    );
  }
  if (doc.contents === null) return [];
  const duplicate = findDuplicateKey(doc.contents);
  if (duplicate !== undefined) {
    const position = positionOf(duplicate.node.range?.[0] ?? 0);
    throw new ManifestError(
      `${where(sourceName, documentIndex, position)}: YAML syntax error: mapping key "${duplicate.key}" already defined`,
      sourceName,
      documentIndex,
      position,
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ManifestError(
      `${where(sourceName, documentIndex, undefined)}: ${err instanceof RangeError ? TOO_DEEP : errorMessage(err)}`,
      sourceName,
      documentIndex,
      undefined,
    );
  }
  if (value === null || value === undefined) return [];
  return manifestDocuments(sourceName, documentIndex, value, (path) => positionOf(locateNode(doc, path)));
}

/** Splits a document's value into manifests (a List into its items), or throws for a non-object. */
function manifestDocuments(
  sourceName: string,
  documentIndex: number,
  value: unknown,
  locatePath: (path: (string | number)[]) => SourcePosition,
): ManifestDocument[] {
  const locateIn = (prefix: (string | number)[]) => (fieldPath: string | undefined) =>
    locatePath([...prefix, ...parseFieldPath(fieldPath ?? '')]);
  if (!isPlainObject(value)) {
    const position = locateIn([])(undefined);
    throw new ManifestError(
      `${where(sourceName, documentIndex, position)}: a manifest must be a mapping with apiVersion, kind and metadata`,
      sourceName,
      documentIndex,
      position,
    );
  }
  if (value.kind === 'List' && Array.isArray(value.items)) {
    return value.items.map((item, itemIndex) => {
      const prefix = ['items', itemIndex];
      if (!isPlainObject(item)) {
        const position = locateIn(prefix)(undefined);
        throw new ManifestError(
          `${where(sourceName, documentIndex, position)}: items[${itemIndex}]: a manifest must be a mapping`,
          sourceName,
          documentIndex,
          position,
          `items[${itemIndex}]`,
        );
      }
      return {
        source: sourceName,
        documentIndex,
        pathPrefix: prefix,
        object: item,
        locate: locateIn(prefix),
      };
    });
  }
  return [{ source: sourceName, documentIndex, pathPrefix: [], object: value, locate: locateIn([]) }];
}

/**
 * `locate` for a document the fast path read: its span parsed by the full parser on first use
 * (only errors locate), positions shifted by the lines before the span.
 */
function lazyLocator(text: string, span: DocumentSpan): (path: (string | number)[]) => SourcePosition {
  let parsed: { doc: Document; lineCounter: LineCounter } | undefined;
  return (path) => {
    if (parsed === undefined) {
      const lineCounter = new LineCounter();
      const docs = parseAllDocuments(text.slice(span.start, span.end), {
        ...KUBERNETES_YAML,
        lineCounter,
        prettyErrors: false,
      });
      parsed = { doc: (docs as Document[])[0]!, lineCounter };
    }
    const pos = parsed.lineCounter.linePos(locateNode(parsed.doc, path));
    return { line: pos.line + span.line, column: pos.col };
  };
}

/**
 * Wraps a field error (from local validation or the server) with the document's location:
 * `file: document N (line L, column C): <field>: <message>`.
 */
export function manifestFieldError(doc: ManifestDocument, err: InvalidArgumentError): ManifestError {
  const position = doc.locate(err.field);
  const field = [formatFieldPath(doc.pathPrefix), err.field].filter(Boolean).join('.');
  const fieldPart = field && !err.message.includes(err.field ?? '\0') ? `${field}: ` : '';
  return new ManifestError(
    `${where(doc.source, doc.documentIndex, position)}: ${fieldPart}${err.message}`,
    doc.source,
    doc.documentIndex,
    position,
    err.field,
    { cause: err },
  );
}

/** A ManifestError for a document as a whole (no field), e.g. an unknown kind. */
export function manifestDocumentError(doc: ManifestDocument, message: string, field?: string): ManifestError {
  const position = doc.locate(field);
  return new ManifestError(
    `${where(doc.source, doc.documentIndex, position)}: ${field ? `${field}: ` : ''}${message}`,
    doc.source,
    doc.documentIndex,
    position,
    field,
  );
}

function where(source: string, documentIndex: number, position: SourcePosition | undefined): string {
  const at = position ? ` (line ${position.line}, column ${position.column})` : '';
  return `${source}: document ${documentIndex}${at}`;
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

/** `spec.containers[0].image` → ['spec', 'containers', 0, 'image']; `metadata.labels["a.b/c"]` too. */
export function parseFieldPath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  // `[key]` without quotes is how Kubernetes writes a map key (`data[big.bin]`).
  const re = /([^.[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|\['([^']*)'\]|\[([^\]"']+)\]/g;
  for (const match of path.matchAll(re)) {
    if (match[1] !== undefined) out.push(match[1]);
    else if (match[2] !== undefined) out.push(Number(match[2]));
    else if (match[3] !== undefined) out.push(match[3].replace(/\\(.)/g, '$1'));
    else if (match[4] !== undefined) out.push(match[4]);
    else if (match[5] !== undefined) out.push(match[5]);
  }
  return out;
}

function formatFieldPath(path: (string | number)[]): string {
  return path.reduce<string>(
    (acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part),
    '',
  );
}

/**
 * Walks the path as far as the YAML tree goes. A mapping entry resolves to its key (that is where
 * an unknown field is written); a missing field resolves to its nearest existing parent. Answers
 * the offset in the parsed text.
 */
function locateNode(doc: Document, path: (string | number)[]): number {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
  for (const part of path) {
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(part),
      );
      if (!pair) break;
      const keyNode = pair.key as Node;
      offset = keyNode.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof part === 'number') {
      const item = node.items[part] as Node | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
