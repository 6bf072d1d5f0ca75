/**
 * The Dockerfile language, as Docker's classic builder reads it: parser directives (`# escape=`,
 * `# syntax=`, the latter ignored), comments, line continuations, instructions with their flags,
 * the JSON-array forms, and variable substitution (`$VAR`, `${VAR}`, `${VAR:-default}`,
 * `${VAR:+alt}`, `${VAR-default}`, `${VAR+alt}`) in the instructions Docker substitutes. Pure: the
 * builder (image-builder.ts) feeds it the base image's environment.
 *
 * Every error is an InvalidArgumentError whose message starts with `Dockerfile:LINE:` (the line
 * the instruction starts on), so the user is sent to the line at fault.
 */
import { InvalidArgumentError } from '../../../proto/errors.js';

/** One instruction as written: keyword (upper-cased), flags, and the text after them. */
export interface Instruction {
  /** 1-based line the instruction starts on. */
  line: number;
  keyword: string;
  /** `--name=value` flags before the arguments (values unsubstituted). */
  flags: Map<string, string>;
  /** The arguments after the flags, continuation lines joined, unsubstituted. */
  args: string;
  /** The instruction as it reads after joining continuations (for history and progress). */
  text: string;
}

export interface ParsedDockerfile {
  escape: '\\' | '`';
  instructions: Instruction[];
}

const KEYWORDS = new Set([
  'FROM',
  'RUN',
  'CMD',
  'LABEL',
  'MAINTAINER',
  'EXPOSE',
  'ENV',
  'ADD',
  'COPY',
  'ENTRYPOINT',
  'VOLUME',
  'USER',
  'WORKDIR',
  'ARG',
  'ONBUILD',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'SHELL',
]);

/** The flags each instruction accepts; any other is an error naming the line. */
const FLAGS: Record<string, readonly string[]> = {
  FROM: ['platform'],
  COPY: ['from', 'chown', 'chmod'],
  ADD: ['chown', 'chmod'],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};

export function dockerfileError(line: number, message: string): InvalidArgumentError {
  return new InvalidArgumentError(`Dockerfile:${line}: ${message}`, 'dockerfile');
}

/** Splits a Dockerfile into instructions. Throws on an unknown instruction or a bad flag. */
export function parseDockerfile(text: string): ParsedDockerfile {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  let escape: '\\' | '`' = '\\';
  let at = 0;
  // parser directives: only at the very top, before any blank line, comment or instruction
  const seen = new Set<string>();
  for (; at < lines.length; at++) {
    const m = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$/.exec(lines[at]!);
    if (!m) break;
    const name = m[1]!.toLowerCase();
    if (name !== 'escape' && name !== 'syntax' && name !== 'check') break;
    if (seen.has(name)) throw dockerfileError(at + 1, `the parser directive ${name} is given twice`);
    seen.add(name);
    if (name === 'escape') {
      if (m[2] !== '\\' && m[2] !== '`')
        throw dockerfileError(at + 1, `invalid escape character ${JSON.stringify(m[2])}: use \\ or \``);
      escape = m[2];
    }
  }
  const instructions: Instruction[] = [];
  const continues = new RegExp(`${escape === '\\' ? '\\\\' : '`'}\\s*$`);
  while (at < lines.length) {
    const raw = lines[at]!;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) {
      at++;
      continue;
    }
    const start = at + 1;
    let joined = '';
    let line = raw;
    for (;;) {
      if (continues.test(line)) {
        joined += line.replace(continues, '');
        at++;
        // comment and empty lines inside a continuation are dropped, as Docker does
        while (at < lines.length && /^\s*(#.*)?$/.test(lines[at]!)) at++;
        if (at >= lines.length) break;
        line = lines[at]!;
        continue;
      }
      joined += line;
      at++;
      break;
    }
    instructions.push(splitInstruction(joined.trim(), start));
  }
  return { escape, instructions };
}

function splitInstruction(text: string, line: number): Instruction {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(text)!;
  const keyword = m[1]!.toUpperCase();
  if (!KEYWORDS.has(keyword)) throw dockerfileError(line, `unknown instruction: ${m[1]}`);
  let rest = m[2]!;
  const flags = new Map<string, string>();
  const allowed = FLAGS[keyword] ?? [];
  for (;;) {
    const f = /^--([a-zA-Z][a-zA-Z0-9-]*)(?:=(\S*))?(\s+|$)/.exec(rest);
    if (!f || keyword === 'RUN' || keyword === 'CMD' || keyword === 'ENTRYPOINT') {
      if (f && keyword === 'RUN') {
        throw dockerfileError(
          line,
          `RUN --${f[1]} is not supported (BuildKit's RUN flags are not part of the classic builder)`,
        );
      }
      break;
    }
    const name = f[1]!;
    if (!allowed.includes(name)) {
      throw dockerfileError(
        line,
        `unknown flag --${name} for ${keyword}${allowed.length ? ` (it takes ${allowed.map((a) => `--${a}`).join(', ')})` : ''}`,
      );
    }
    if (f[2] === undefined || f[2] === '')
      throw dockerfileError(line, `${keyword} --${name} needs a value (--${name}=VALUE)`);
    flags.set(name, f[2]);
    rest = rest.slice(f[0].length);
  }
  return { line, keyword, flags, args: rest.trim(), text };
}

/** The JSON-array form of `args` (exec form), or undefined when it is not one (shell form). */
export function jsonForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  try {
    const value: unknown = JSON.parse(args);
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  } catch {
    // not JSON: Docker then treats the text as shell form
  }
  return undefined;
}

// ----------------------------------------------------------------------------------- substitution

/** Variables visible to substitution: name → value. */
export type Variables = ReadonlyMap<string, string>;

interface Word {
  text: string;
  /** Whether any of it was quoted (an empty quoted word still counts). */
  quoted: boolean;
}

/**
 * Shell-word processing as Docker's (shell/lex.go): quotes removed, `$` expansions outside single
 * quotes, the escape character protecting the next character; `split` cuts at unquoted
 * whitespace. `line` names the instruction in errors.
 */
function lex(text: string, vars: Variables, escape: string, split: boolean, line: number): Word[] {
  const words: Word[] = [];
  let cur = '';
  let quoted = false;
  let started = false;
  const push = () => {
    if (started) words.push({ text: cur, quoted });
    cur = '';
    quoted = false;
    started = false;
  };
  let i = 0;
  const n = text.length;
  const variable = (): string => {
    // at text[i] === '$'
    const next = text[i + 1];
    if (next === '{') {
      const close = text.indexOf('}', i + 2);
      if (close < 0) throw dockerfileError(line, `missing '}' in ${JSON.stringify(text)}`);
      const body = text.slice(i + 2, close);
      i = close + 1;
      const m = /^([a-zA-Z_][a-zA-Z0-9_]*)(?:(:?[-+])([\s\S]*))?$/.exec(body);
      if (!m) throw dockerfileError(line, `bad substitution \${${body}}`);
      const value = vars.get(m[1]!);
      const op = m[2];
      const word = m[3] !== undefined ? (lex(m[3], vars, escape, false, line)[0]?.text ?? '') : '';
      switch (op) {
        case undefined:
          return value ?? '';
        case ':-':
          return value === undefined || value === '' ? word : value;
        case '-':
          return value === undefined ? word : value;
        case ':+':
          return value !== undefined && value !== '' ? word : '';
        case '+':
          return value !== undefined ? word : '';
      }
      return '';
    }
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i + 1));
    if (!m) {
      i++;
      return '$';
    }
    i += 1 + m[0].length;
    return vars.get(m[0]) ?? '';
  };
  while (i < n) {
    const c = text[i]!;
    if (split && /\s/.test(c)) {
      push();
      i++;
      continue;
    }
    started = true;
    if (c === escape) {
      if (i + 1 < n) cur += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "'") {
      const close = text.indexOf("'", i + 1);
      if (close < 0) throw dockerfileError(line, `unterminated single quote in ${JSON.stringify(text)}`);
      cur += text.slice(i + 1, close);
      quoted = true;
      i = close + 1;
      continue;
    }
    if (c === '"') {
      quoted = true;
      i++;
      while (i < n && text[i] !== '"') {
        if (
          text[i] === escape &&
          i + 1 < n &&
          (text[i + 1] === '"' || text[i + 1] === '$' || text[i + 1] === escape)
        ) {
          cur += text[i + 1];
          i += 2;
        } else if (text[i] === '$') {
          cur += variable();
        } else {
          cur += text[i++];
        }
      }
      if (i >= n) throw dockerfileError(line, `unterminated double quote in ${JSON.stringify(text)}`);
      i++;
      continue;
    }
    if (c === '$') {
      const value = variable();
      if (!split) {
        cur += value;
        continue;
      }
      // an unquoted value is split into words as the shell would
      const pieces = value.split(/\s+/);
      cur += pieces[0];
      for (const piece of pieces.slice(1)) {
        push();
        started = piece !== '';
        cur = piece;
      }
      continue;
    }
    cur += c;
    i++;
  }
  push();
  return words;
}

/** `text` with quotes removed and variables substituted, as one word (WORKDIR, USER, …). */
export function substitute(text: string, vars: Variables, escape: string, line: number): string {
  return lex(text, vars, escape, false, line)[0]?.text ?? '';
}

/** `text` cut into words at unquoted whitespace, each substituted (COPY sources, EXPOSE, …). */
export function substituteWords(text: string, vars: Variables, escape: string, line: number): string[] {
  return lex(text, vars, escape, true, line).map((w) => w.text);
}

/**
 * KEY=VALUE pairs of ENV, LABEL and ARG (`ENV k=v k2="v 2"`), or the legacy `ENV key value`
 * form (one pair, the rest of the line the value) when `legacy` and the first word has no '='.
 */
export function keyValues(
  args: string,
  vars: Variables,
  escape: string,
  line: number,
  keyword: string,
  legacy: boolean,
): { key: string; value: string | undefined }[] {
  const first = /^(?:"[^"]*"|'[^']*'|\S)*/.exec(args)?.[0] ?? '';
  if (legacy && !first.includes('=')) {
    const rest = args.slice(first.length).trim();
    if (rest === '') throw dockerfileError(line, `${keyword} ${first} needs a value (${keyword} KEY=VALUE)`);
    return [{ key: first, value: substitute(rest, vars, escape, line) }];
  }
  const words = lex(args, vars, escape, true, line);
  if (words.length === 0) throw dockerfileError(line, `${keyword} needs at least one KEY=VALUE`);
  return words.map((w) => {
    const eq = w.text.indexOf('=');
    if (eq < 0) {
      if (keyword === 'ARG') return { key: w.text, value: undefined };
      throw dockerfileError(line, `${keyword}: ${JSON.stringify(w.text)} is not KEY=VALUE`);
    }
    if (eq === 0) throw dockerfileError(line, `${keyword}: ${JSON.stringify(w.text)} has no name before '='`);
    return { key: w.text.slice(0, eq), value: w.text.slice(eq + 1) };
  });
}

/** A Go duration ("30s", "1m30s", "500ms") as nanoseconds, as Docker stores Healthcheck times. */
export function parseDuration(text: string, line: number, flag: string): number {
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  if (text === '0') return 0;
  let total = 0;
  let rest = text;
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/.exec(rest);
    if (!m)
      throw dockerfileError(
        line,
        `HEALTHCHECK --${flag}: ${JSON.stringify(text)} is not a duration (like 30s or 1m30s)`,
      );
    total += Number(m[1]) * units[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}
