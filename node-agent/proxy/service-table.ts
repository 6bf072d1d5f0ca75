/**
 * The Service objects of the node's table as one value, and the `nft -f` scripts that take the
 * kernel from one such value to another. Pure.
 *
 * - `gatherTable(plans)`: every Service's plan into one table. Two Services claiming one key
 *   (a ClusterIP or nodePort reused while the old owner's deletion is still on its way, or a
 *   tenant's externalIP naming another Service's ClusterIP) cannot both have it: a Service's own
 *   ClusterIP keys go first, then the rest, each the first in Service order keeping it; the loser
 *   is told in `conflicts`. A map and its no-endpoint twin are one key space: the no-endpoint
 *   check runs before DNAT, so a key in both would reject the Service that holds it.
 * - `changeScript(applied, wanted)`: only what differs, in an order the kernel accepts in one
 *   transaction: stale elements deleted, new sets and chains declared, changed chains flushed
 *   and refilled, new elements added, then stale chains flushed and deleted, stale sets deleted.
 *   One endpoint becoming ready rewrites its Service's balancing chain (a rule per endpoint);
 *   nothing else is touched.
 * - `fullScript(applied, wanted)`: every object written again (maps flushed and refilled, each
 *   chain declared, flushed and filled), and everything `applied` had that is no longer wanted
 *   declared then deleted, so it succeeds whatever subset of `applied` the kernel really holds
 *   (none, after PodNetwork rewrote the table at start-up).
 *
 * Names reach the scripts from service-plan.ts, which builds them from checked parts only.
 */
import { SERVICE_OBJECTS } from '../runtime/net/nft-ruleset.js';
import { TABLE_FAMILY, TABLE_NAME } from '../runtime/net/nft-ruleset.js';
import type { AffinitySet, ChainRules, ServicePlan } from './service-plan.js';

const TABLE = `${TABLE_FAMILY} ${TABLE_NAME}`;

/** The maps a plan may fill (the table declares them; nft-ruleset.ts). */
export const SERVICE_MAPS: readonly string[] = [
  SERVICE_OBJECTS.serviceIps,
  SERVICE_OBJECTS.serviceNodePorts,
  SERVICE_OBJECTS.noEndpointServices,
  SERVICE_OBJECTS.noEndpointNodePorts,
];

/** Maps whose keys name the same packets: one owner per key across them. */
const KEY_SPACE = new Map<string, string>([
  [SERVICE_OBJECTS.noEndpointServices, SERVICE_OBJECTS.serviceIps],
  [SERVICE_OBJECTS.noEndpointNodePorts, SERVICE_OBJECTS.serviceNodePorts],
]);

export interface ServiceTable {
  /** map name → element key → verdict (every map of SERVICE_MAPS present) */
  elements: ReadonlyMap<string, ReadonlyMap<string, string>>;
  chains: ReadonlyMap<string, ChainRules>;
  sets: ReadonlyMap<string, AffinitySet>;
}

export const EMPTY_TABLE: ServiceTable = {
  elements: new Map(SERVICE_MAPS.map((m) => [m, new Map<string, string>()])),
  chains: new Map(),
  sets: new Map(),
};

export interface GatheredTable {
  table: ServiceTable;
  /** `map key` claimed by two Services: which one lost it. */
  conflicts: string[];
}

/** Every plan into one table; `plans` keyed by Service (`namespace/name`). */
export function gatherTable(plans: ReadonlyMap<string, ServicePlan>): GatheredTable {
  const elements = new Map(SERVICE_MAPS.map((m) => [m, new Map<string, string>()]));
  const owners = new Map<string, string>();
  const chains = new Map<string, ChainRules>();
  const sets = new Map<string, AffinitySet>();
  const conflicts: string[] = [];
  const keys = [...plans.keys()].sort();
  for (const ownClusterIP of [true, false])
    for (const service of keys) {
      const plan = plans.get(service)!;
      const own = plan.clusterIP === undefined ? undefined : `${plan.clusterIP} . `;
      for (const [map, entries] of plan.elements) {
        const into = elements.get(map)!;
        for (const [key, verdict] of entries) {
          if ((own !== undefined && key.startsWith(own)) !== ownClusterIP) continue;
          const claim = `${KEY_SPACE.get(map) ?? map} ${key}`;
          const owner = owners.get(claim);
          if (owner !== undefined) {
            conflicts.push(`${map} ${key}: held by Service ${owner}, not given to ${service}`);
            continue;
          }
          owners.set(claim, service);
          into.set(key, verdict);
        }
      }
    }
  for (const service of keys) {
    const plan = plans.get(service)!;
    // chain and set names carry a hash of the Service's own key: no two Services share one
    for (const [name, rules] of plan.chains) chains.set(name, rules);
    for (const [name, set] of plan.sets) sets.set(name, set);
  }
  return { table: { elements, chains, sets }, conflicts };
}

/** Elements to one statement per map (nft takes thousands in one `{ … }`). */
function elementStatements(verb: 'add' | 'delete', map: string, items: readonly string[]): string[] {
  return items.length === 0 ? [] : [`${verb} element ${TABLE} ${map} { ${items.join(', ')} }`];
}

function setDeclaration(name: string, set: AffinitySet): string {
  return `add set ${TABLE} ${name} { type ipv4_addr; flags dynamic,timeout; timeout ${set.timeoutSeconds}s; }`;
}

function chainFill(name: string, rules: ChainRules): string[] {
  return rules.map((rule) => `add rule ${TABLE} ${name} ${rule}`);
}

function sameRules(a: ChainRules | undefined, b: ChainRules): boolean {
  if (a === b) return true;
  if (a === undefined || a.length !== b.length) return false;
  return a.every((rule, i) => rule === b[i]);
}

/** The script taking the kernel from `applied` to `wanted`; empty when they are the same. */
export function changeScript(applied: ServiceTable, wanted: ServiceTable): string {
  const lines: string[] = [];
  const adds: string[] = [];
  for (const map of SERVICE_MAPS) {
    const before = applied.elements.get(map) ?? new Map<string, string>();
    const after = wanted.elements.get(map) ?? new Map<string, string>();
    const stale: string[] = [];
    const added: string[] = [];
    for (const [key, verdict] of before) if (after.get(key) !== verdict) stale.push(key);
    for (const [key, verdict] of after) if (before.get(key) !== verdict) added.push(`${key} : ${verdict}`);
    lines.push(...elementStatements('delete', map, stale));
    adds.push(...elementStatements('add', map, added));
  }
  for (const [name, set] of wanted.sets) if (!applied.sets.has(name)) lines.push(setDeclaration(name, set));
  const changed: [string, ChainRules][] = [];
  for (const [name, rules] of wanted.chains) {
    const before = applied.chains.get(name);
    if (before === undefined) lines.push(`add chain ${TABLE} ${name}`);
    if (!sameRules(before, rules)) changed.push([name, rules]);
  }
  for (const [name, rules] of changed) {
    if (applied.chains.has(name)) lines.push(`flush chain ${TABLE} ${name}`);
    lines.push(...chainFill(name, rules));
  }
  lines.push(...adds);
  const staleChains = [...applied.chains.keys()].filter((name) => !wanted.chains.has(name));
  for (const name of staleChains) lines.push(`flush chain ${TABLE} ${name}`);
  for (const name of staleChains) lines.push(`delete chain ${TABLE} ${name}`);
  for (const name of applied.sets.keys())
    if (!wanted.sets.has(name)) lines.push(`delete set ${TABLE} ${name}`);
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

/**
 * Every Service object written again, whatever of `applied` the kernel holds (see the file's
 * comment): used at start, on the periodic resync, and after a failed write.
 */
export function fullScript(applied: ServiceTable, wanted: ServiceTable): string {
  const lines: string[] = [];
  for (const map of SERVICE_MAPS) lines.push(`flush map ${TABLE} ${map}`);
  for (const [name, set] of applied.sets) if (!wanted.sets.has(name)) lines.push(setDeclaration(name, set));
  for (const [name, set] of wanted.sets) lines.push(setDeclaration(name, set));
  const stale = [...applied.chains.keys()].filter((name) => !wanted.chains.has(name));
  for (const name of [...stale, ...wanted.chains.keys()]) {
    lines.push(`add chain ${TABLE} ${name}`, `flush chain ${TABLE} ${name}`);
  }
  for (const [name, rules] of wanted.chains) lines.push(...chainFill(name, rules));
  for (const map of SERVICE_MAPS) {
    const entries = wanted.elements.get(map) ?? new Map<string, string>();
    lines.push(
      ...elementStatements(
        'add',
        map,
        [...entries].map(([key, verdict]) => `${key} : ${verdict}`),
      ),
    );
  }
  for (const name of stale) lines.push(`delete chain ${TABLE} ${name}`);
  for (const name of applied.sets.keys())
    if (!wanted.sets.has(name)) lines.push(`delete set ${TABLE} ${name}`);
  return lines.join('\n') + '\n';
}
