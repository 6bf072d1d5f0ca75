/**
 * `.dockerignore` as Docker reads it (moby/patternmatcher): one pattern per line, `#` comments,
 * paths relative to the context root (a leading `/` is dropped, `..` and `.` cleaned), Go's
 * filepath.Match syntax (`*`, `?`, `[a-z]`, `\` escapes) plus `**` for any number of directories,
 * `!` re-including what an earlier pattern excluded; the last pattern that matches a path or one
 * of its parent directories decides. Pure.
 */

interface Pattern {
  exclude: boolean;
  regexp: RegExp;
  text: string;
}

/** A glob of Go's filepath.Match (with `**`) as an anchored regular expression over `/`-paths. */
export function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        // `**/` matches zero or more directories; a trailing `**` matches anything below
        i++;
        if (glob[i + 1] === '/') {
          i++;
          out += '(?:.*/)?';
        } else {
          out += '.*';
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 1);
      if (close < 0) {
        out += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, close);
      if (body.startsWith('^') || body.startsWith('!')) body = `^${body.slice(1)}`;
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else if (c === '\\' && i + 1 < glob.length) {
      out += escapeRegExp(glob[++i]!);
    } else {
      out += escapeRegExp(c);
    }
  }
  return new RegExp(`^${out}$`);
}

function escapeRegExp(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
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
      this.patterns.push({ exclude, regexp: globToRegExp(cleaned), text: cleaned });
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
      if (parents.some((candidate) => p.regexp.test(candidate))) ignored = p.exclude;
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
