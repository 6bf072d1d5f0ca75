/**
 * A pod's /etc/resolv.conf, by the kubelet's rules (pkg/kubelet/network/dns): its dnsPolicy picks
 * where the resolver starts from, its dnsConfig is merged on top, and the C library's limits are
 * kept. Pure.
 *
 *   ClusterFirst            nameserver <cluster DNS>; search <ns>.svc.<domain> svc.<domain> <domain>
 *                           and the node's search domains; options ndots:5
 *                           (with hostNetwork: as Default)
 *   ClusterFirstWithHostNet as ClusterFirst, hostNetwork or not
 *   Default                 the node's resolv.conf (nameservers, search, options)
 *   None                    nothing: only dnsConfig
 *   dnsConfig               nameservers and searches appended (duplicates dropped), options merged
 *                           by name (the pod's value wins: `ndots: "2"` replaces ndots:5)
 *   limits                  3 nameservers, 32 search domains, 2048 characters of search line: the
 *                           rest dropped, as the kubelet does (and says in an event)
 */
import type { Pod } from '../../proto/gen/types.js';

export const MAX_NAMESERVERS = 3;
export const MAX_SEARCHES = 32;
export const MAX_SEARCH_CHARACTERS = 2048;

export interface ResolverConfig {
  nameservers: string[];
  searches: string[];
  options: string[];
}

export interface ClusterDNS {
  /** The cluster DNS Service's address (version.clusterDNS). */
  address: string;
  /** The cluster domain (version.clusterDomain). */
  domain: string;
}

/** Parses resolv.conf text (the node's): nameserver lines, the last search/domain line, options. */
export function parseResolvConf(text: string): ResolverConfig {
  const config: ResolverConfig = { nameservers: [], searches: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [keyword, ...fields] = line.split(/\s+/);
    if (keyword === 'nameserver' && fields[0] !== undefined) config.nameservers.push(fields[0]);
    else if (keyword === 'search' || keyword === 'domain') config.searches = fields.filter((f) => f !== '');
    else if (keyword === 'options') config.options.push(...fields.filter((f) => f !== ''));
  }
  return config;
}

/** What the kubelet resolves a pod's dnsPolicy to. */
export function effectiveDnsPolicy(pod: Pod): 'cluster' | 'host' | 'none' {
  const policy = pod.spec.dnsPolicy || 'ClusterFirst';
  if (policy === 'None') return 'none';
  if (policy === 'ClusterFirstWithHostNet') return 'cluster';
  if (policy === 'ClusterFirst' && !pod.spec.hostNetwork) return 'cluster';
  return 'host';
}

/** The pod's resolver configuration: its policy's base, its dnsConfig merged, the limits kept. */
export function podResolverConfig(pod: Pod, cluster: ClusterDNS, node: ResolverConfig): ResolverConfig {
  let base: ResolverConfig;
  switch (effectiveDnsPolicy(pod)) {
    case 'cluster': {
      const domain = cluster.domain;
      base = {
        nameservers: [cluster.address],
        searches: [`${pod.metadata.namespace}.svc.${domain}`, `svc.${domain}`, domain, ...node.searches],
        options: ['ndots:5'],
      };
      break;
    }
    case 'host':
      base = { nameservers: [...node.nameservers], searches: [...node.searches], options: [...node.options] };
      break;
    case 'none':
      base = { nameservers: [], searches: [], options: [] };
  }
  const extra = pod.spec.dnsConfig;
  const merged: ResolverConfig = extra
    ? {
        nameservers: unique([...base.nameservers, ...(extra.nameservers ?? [])]),
        searches: unique([...base.searches, ...(extra.searches ?? [])]),
        options: mergeOptions(base.options, extra.options ?? []),
      }
    : { ...base, searches: unique(base.searches) };
  return {
    nameservers: merged.nameservers.slice(0, MAX_NAMESERVERS),
    searches: withinSearchLimits(merged.searches),
    options: merged.options,
  };
}

/** A space, newline or control character: what would make one word of the file several, or a line. */
const WORD_BREAK = /[\s\x00-\x1f\x7f]/;

/**
 * resolv.conf text for a configuration (an empty file for an empty one, as the kubelet writes).
 * A word that is not one (an object stored before the API refused it) is left out, so no value
 * adds a line of its own.
 */
export function resolvConfText(config: ResolverConfig): string {
  const words = (values: readonly string[]) => values.filter((v) => v !== '' && !WORD_BREAK.test(v));
  const searches = words(config.searches);
  const options = words(config.options);
  const lines: string[] = [];
  if (searches.length > 0) lines.push(`search ${searches.join(' ')}`);
  for (const nameserver of words(config.nameservers)) lines.push(`nameserver ${nameserver}`);
  if (options.length > 0) lines.push(`options ${options.join(' ')}`);
  return lines.map((line) => `${line}\n`).join('');
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

/** Options by name, in first-seen order; a later value (the pod's) replaces an earlier one. */
function mergeOptions(
  base: readonly string[],
  extra: readonly { name?: string; value?: string }[],
): string[] {
  const byName = new Map<string, string | undefined>();
  for (const option of base) {
    const colon = option.indexOf(':');
    if (colon === -1) byName.set(option, undefined);
    else byName.set(option.slice(0, colon), option.slice(colon + 1));
  }
  for (const option of extra) if (option.name) byName.set(option.name, option.value || undefined);
  return [...byName].map(([name, value]) => (value === undefined ? name : `${name}:${value}`));
}

/** The first search domains that fit 32 entries and 2048 characters (joined by spaces). */
function withinSearchLimits(searches: readonly string[]): string[] {
  const kept: string[] = [];
  let characters = -1;
  for (const search of searches.slice(0, MAX_SEARCHES)) {
    if (characters + 1 + search.length > MAX_SEARCH_CHARACTERS) break;
    characters += 1 + search.length;
    kept.push(search);
  }
  return kept;
}
