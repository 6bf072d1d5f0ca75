/**
 * `.dockerignore` as Docker reads it (moby/patternmatcher): one pattern per line, `#` comments,
 * paths relative to the context root (a leading `/` is dropped, `..` and `.` cleaned), Go's
 * filepath.Match syntax (`*`, `?`, `[a-z]`, `\` escapes) plus `**` for any number of directories,
 * `!` re-including what an earlier pattern excluded; the last pattern that matches a path or one
 * of its parent directories decides. Pure.
 */

interface Pattern {
  exclude: boolean;
  matcher: GlobMatcher;
  text: string;
}

/** A compiled glob: whether a `/`-path matches it, whole. */
export interface GlobMatcher {
  test(path: string): boolean;
}

type GlobToken =
  | { kind: 'char'; test: (c: string) => boolean }
  /** `*`: any run of characters but `/`. */
  | { kind: 'star' }
  /** a trailing `**`: anything. */
  | { kind: 'any' }
  /** `**` + `/`: zero or more directories (nothing, or anything ending in `/`). */
  | { kind: 'dirs' };

/**
 * A glob of Go's filepath.Match (with `**`), matched by dynamic programming over the pattern and
 * the path (time: their lengths multiplied), never by backtracking: a stranger's `*a*a*a…b` in a
 * .dockerignore or a COPY source must not take hours. Every character, a newline too, is matched
 * like any other.
 */
export function globMatcher(glob: string): GlobMatcher {
  const tokens: GlobToken[] = [];
  const literal = (c: string): GlobToken => ({ kind: 'char', test: (x) => x === c });
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          i++;
          tokens.push({ kind: 'dirs' });
        } else {
          tokens.push({ kind: 'any' });
        }
      } else {
        tokens.push({ kind: 'star' });
      }
    } else if (c === '?') {
      tokens.push({ kind: 'char', test: (x) => x !== '/' });
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 1);
      if (close < 0) {
        tokens.push(literal('['));
        continue;
      }
      let body = glob.slice(i + 1, close);
      if (body.startsWith('^') || body.startsWith('!')) body = `^${body.slice(1)}`;
      // one character against a class: no repetition, nothing to backtrack
      const cls = new RegExp(`^[${body.replace(/\\/g, '\\\\')}]$`, 's');
      tokens.push({ kind: 'char', test: (x) => cls.test(x) });
      i = close;
    } else if (c === '\\' && i + 1 < glob.length) {
      tokens.push(literal(glob[++i]!));
    } else {
      tokens.push(literal(c));
    }
  }
  return {
    test(path: string): boolean {
      const chars = [...path];
      const n = chars.length;
      // next[s]: whether the tokens after the current one match chars[s..]
      let next = new Uint8Array(n + 1);
      next[n] = 1;
      for (let t = tokens.length - 1; t >= 0; t--) {
        const token = tokens[t]!;
        const row = new Uint8Array(n + 1);
        let slashThenNext = 0;
        for (let s = n; s >= 0; s--) {
          switch (token.kind) {
            case 'char':
              row[s] = s < n && next[s + 1] && token.test(chars[s]!) ? 1 : 0;
              break;
            case 'star':
              row[s] = next[s] || (s < n && chars[s] !== '/' && row[s + 1]) ? 1 : 0;
              break;
            case 'any':
              row[s] = next[s] || (s < n && row[s + 1]) ? 1 : 0;
              break;
            case 'dirs':
              // some '/' at or after s with the rest matching right after it
              if (s < n && chars[s] === '/' && next[s + 1]) slashThenNext = 1;
              row[s] = next[s] || slashThenNext ? 1 : 0;
              break;
          }
        }
        next = row;
      }
      return next[0] === 1;
    },
  };
}

/** Whether `text` uses glob syntax at all. */
export function isGlob(text: string): boolean {
  return /[*?[]/.test(text);
}

/** A path cleaned as Go's filepath.Clean, relative to the context root ('' is the root). */
export function cleanRelative(path: string): string {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

export class DockerIgnore {
  private readonly patterns: Pattern[];

  constructor(text: string) {
    this.patterns = [];
    for (const raw of text.split(/\r?\n/)) {
      let line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      let exclude = true;
      if (line.startsWith('!')) {
        exclude = false;
        line = line.slice(1).trim();
      }
      const cleaned = cleanRelative(line);
      if (cleaned === '') continue;
      this.patterns.push({ exclude, matcher: globMatcher(cleaned), text: cleaned });
    }
  }

  /** Whether the file or directory at `path` (relative, `/`-separated) is left out of the context. */
  ignores(path: string): boolean {
    const rel = cleanRelative(path);
    if (rel === '') return false;
    const parents: string[] = [];
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) parents.push(parts.slice(0, i).join('/'));
    let ignored = false;
    for (const p of this.patterns) {
      // a pattern matching a parent directory matches everything in it
      if (parents.some((candidate) => p.matcher.test(candidate))) ignored = p.exclude;
    }
    return ignored;
  }

  /**
   * Whether a directory must be walked although it is ignored: an exception (`!pattern`) could
   * re-include something beneath it.
   */
  mayReinclude(dir: string): boolean {
    const rel = cleanRelative(dir);
    return this.patterns.some(
      (p) => !p.exclude && (p.text.startsWith(`${rel}/`) || p.text.startsWith('**') || isGlob(p.text)),
    );
  }
}
