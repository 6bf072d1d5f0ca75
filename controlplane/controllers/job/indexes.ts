/** A Job's completedIndexes as Kubernetes writes them: sorted, runs joined ("1,3-5,7"). */

/** The indexes "1,3-5" names; what is malformed is skipped (the status is ours, but may be old). */
export function parseIndexes(text: string): number[] {
  const indexes: number[] = [];
  for (const part of text.split(',')) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (match === null) continue;
    const low = Number(match[1]);
    const high = match[2] !== undefined ? Number(match[2]) : low;
    for (let i = low; i <= high; i++) indexes.push(i);
  }
  return indexes;
}

export function formatIndexes(indexes: Iterable<number>): string {
  const sorted = [...new Set(indexes)].sort((a, b) => a - b);
  const runs: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    runs.push(j === i ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return runs.join(',');
}
