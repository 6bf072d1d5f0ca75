/**
 * A unified diff of two texts, as `diff -u` prints it (three lines of context, `@@ -l,n +l,n @@`
 * hunk headers, a range of one line written as just its number, an empty range as the line before
 * it). The edit script is Myers' greedy O((N+M)D) shortest one. Pure.
 */

type Op = { type: ' ' | '-' | '+'; line: string };

/** The shortest edit script turning `a` into `b`. */
export function editScript(a: readonly string[], b: readonly string[]): Op[] {
  const n = a.length;
  const m = b.length;
  const max = n + m;
  const offset = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = -1;
  for (let d = 0; d <= max && found < 0; d++) {
    // Only diagonals -d..d matter at step d: keep that window.
    trace.push(v.slice(offset - d - 1, offset + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x =
        k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!)
          ? v[offset + k + 1]!
          : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) {
        found = d;
        break;
      }
    }
  }
  // Walk back through the saved windows.
  const ops: Op[] = [];
  let x = n;
  let y = m;
  for (let d = found; d > 0; d--) {
    const window = trace[d]!;
    const at = (k: number): number => window[k + d + 1]!;
    const k = x - y;
    const down = k === -d || (k !== d && at(k - 1) < at(k + 1));
    const prevK = down ? k + 1 : k - 1;
    const prevX = at(prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) (ops.push({ type: ' ', line: a[--x]! }), y--);
    if (down) ops.push({ type: '+', line: b[--y]! });
    else ops.push({ type: '-', line: a[--x]! });
  }
  while (x > 0 && y > 0) (ops.push({ type: ' ', line: a[--x]! }), y--);
  return ops.reverse();
}

function lines(text: string): string[] {
  if (text === '') return [];
  const all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all;
}

function range(start: number, count: number): string {
  if (count === 1) return `${start}`;
  return `${count === 0 ? start - 1 : start},${count}`;
}

/** The hunks (`@@ … @@` and their lines) turning `before` into `after`; empty when equal. */
export function unifiedHunks(before: string, after: string, context = 3): string[] {
  const ops = editScript(lines(before), lines(after));
  // Changes closer together than two contexts share a hunk.
  const groups: [number, number][] = [];
  ops.forEach((op, i) => {
    if (op.type === ' ') return;
    const last = groups[groups.length - 1];
    if (last !== undefined && i - last[1] - 1 <= 2 * context) last[1] = i;
    else groups.push([i, i]);
  });
  const out: string[] = [];
  let aLine = 1;
  let bLine = 1;
  let counted = 0;
  for (const [first, last] of groups) {
    const start = Math.max(0, first - context);
    const stop = Math.min(ops.length, last + 1 + context);
    for (; counted < start; counted++) {
      if (ops[counted]!.type !== '+') aLine++;
      if (ops[counted]!.type !== '-') bLine++;
    }
    const hunk = ops.slice(start, stop);
    const aCount = hunk.filter((op) => op.type !== '+').length;
    const bCount = hunk.filter((op) => op.type !== '-').length;
    out.push(`@@ -${range(aLine, aCount)} +${range(bLine, bCount)} @@`);
    for (const op of hunk) out.push(`${op.type}${op.line}`);
  }
  return out;
}

/** A whole `diff -u -N` of two labelled texts, or '' when they are equal. */
export function unifiedDiff(before: string, after: string, beforeLabel: string, afterLabel: string): string {
  const hunks = unifiedHunks(before, after);
  if (hunks.length === 0) return '';
  return [
    `diff -u -N ${beforeLabel} ${afterLabel}`,
    `--- ${beforeLabel}`,
    `+++ ${afterLabel}`,
    ...hunks,
    '',
  ].join('\n');
}
