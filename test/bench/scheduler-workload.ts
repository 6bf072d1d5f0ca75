/**
 * The workload both scheduler benchmarks place (scheduler-core.ts: the core alone; scheduler.ts:
 * through etcd): pods of 100m cpu and 128Mi, optionally spread over ZONES zones (maxSkew 1,
 * DoNotSchedule), on nodes `node-<i>` of 4 cpu in zone `zone-<i % ZONES>`; and the check of a run.
 */
import type { Node, Pod } from '../../proto/gen/types.js';
import { makeNode, makePod } from '../../controlplane/scheduler/testing.js';

export const ZONES = 10;

/** Node i: 4 cpu, 16Gi, 110 pods, in zone i % ZONES. */
export function benchNode(i: number): Node {
  return makeNode(`node-${i}`, { cpu: '4', memory: '16Gi', zone: `zone-${i % ZONES}` });
}

export function benchPod(name: string, namespace: string, spread: boolean): Pod {
  return makePod(name, {
    namespace,
    cpu: '100m',
    memory: '128Mi',
    labels: { app: 'bench' },
    ...(spread
      ? {
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: 'topology.kubernetes.io/zone',
              whenUnsatisfiable: 'DoNotSchedule',
              labelSelector: { matchLabels: { app: 'bench' } },
            },
          ],
        }
      : {}),
  });
}

/** Every pod placed; no node over its 4 cpu (40 pods of 100m); zones within maxSkew 1 when spread. */
export function verifyPlacements(
  placed: ReadonlyMap<string, string>,
  podCount: number,
  spread: boolean,
): void {
  if (placed.size !== podCount) throw new Error(`${placed.size} of ${podCount} pods placed`);
  const perNode = new Map<string, number>();
  for (const node of placed.values()) perNode.set(node, (perNode.get(node) ?? 0) + 1);
  for (const [node, count] of perNode)
    if (count > 40) throw new Error(`node ${node} got ${count} pods: over its 4 cpu at 100m each`);
  if (spread) {
    const perZone = new Array<number>(ZONES).fill(0);
    for (const node of placed.values()) perZone[Number(node.slice('node-'.length)) % ZONES]!++;
    const skew = Math.max(...perZone) - Math.min(...perZone);
    if (skew > 1) throw new Error(`zones ${perZone.join(',')}: skew ${skew} over maxSkew 1`);
  }
}

/** Prints rows under a header, each column right-aligned to its widest cell. */
export function printTable(header: readonly string[], rows: readonly string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((cell, i) => cell.padStart(widths[i]!)).join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}
