/**
 * The cluster's DNS records, built from Service and EndpointSlice objects, as Kubernetes' DNS
 * specification (kubernetes/dns docs/specification.md) and CoreDNS's kubernetes plugin shape them.
 * Pure: no socket, no informer; ClusterRecordSync feeds it, the server asks it.
 *
 *   <svc>.<ns>.svc.<domain>            A/AAAA: the ClusterIP; headless: every ready endpoint's address
 *                                      (all of them with publishNotReadyAddresses); ExternalName: CNAME
 *   <ep>.<svc>.<ns>.svc.<domain>       A/AAAA of one headless endpoint; <ep> is its hostname, or its
 *                                      address with dashes (10-244-1-5) when it has none
 *   _<port>._<proto>.<svc>.<ns>.svc.<domain>  SRV per named port: the service name (ClusterIP), or
 *                                      one per endpoint naming <ep>.<svc>… (headless), their A/AAAA
 *                                      as additional records
 *   <a-b-c-d>.<ns>.pod.<domain>        A of the address the name spells (CoreDNS `pods insecure`,
 *                                      kubeadm's default: a node does not follow every pod)
 *   reverse names (in-addr.arpa, ip6.arpa)  PTR of ClusterIPs and headless endpoints' addresses
 *   <domain>                           SOA, NS ns.dns.<domain> (whose A is the cluster DNS address)
 *   dns-version.<domain>               TXT: the schema version (1.1.0)
 *
 * A name of the cluster domain with records, or above one that has (`svc.<domain>`,
 * `<ns>.svc.<domain>`, `_tcp.<svc>.<ns>.svc.<domain>`), exists: a type it lacks is NODATA (NOERROR,
 * no answer, the SOA in authority); any other name there is NXDOMAIN. A reverse name with no PTR
 * here is not ours (`undefined`: forwarded, as CoreDNS's `fallthrough in-addr.arpa ip6.arpa`), and
 * neither is any name outside the domain. Names compare case-insensitively; answers carry the
 * name as asked. Every cluster record has TTL 5 s, CoreDNS's default (`ttl 5`), so a change
 * reaches clients within seconds even through caches; the SOA's minimum is the same 5 s, which
 * bounds how long a resolver keeps a negative answer.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Answer, SrvData } from 'dns-packet';
import type { EndpointSlice, Service } from '../../proto/gen/types.js';

/** The version of Kubernetes' DNS schema served, the TXT of dns-version.<domain>. */
export const DNS_SCHEMA_VERSION = '1.1.0';

/** CoreDNS's kubernetes plugin default TTL for cluster records, seconds. */
export const CLUSTER_TTL = 5;

export interface ClusterZone {
  /** The cluster domain, lower-case, without a trailing dot (cluster.local). */
  domain: string;
  /** The cluster DNS Service's address, the A of ns.dns.<domain>. */
  dnsAddress: string;
}

export type Rcode = 'NOERROR' | 'NXDOMAIN';

/** The answer for a name of the cluster; `cname` asks the caller to resolve that target too. */
export interface ClusterAnswer {
  rcode: Rcode;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
  /** The name an ExternalName's CNAME points at (lower-case), to be resolved and appended. */
  cname?: string;
}

/** What one name holds, from one Service. */
interface NameRecords {
  addresses: string[];
  srv: SrvData[];
  ptr: string[];
  cname?: string;
}

/** The records one Service contributes, by lower-case name. */
export type ServiceRecords = Map<string, NameRecords>;

const REVERSE_SUFFIXES = ['.in-addr.arpa', '.ip6.arpa'];

/**
 * The records of one Service and its slices (those labelled with its name). Pure.
 */
export function serviceRecords(
  service: Service,
  slices: readonly EndpointSlice[],
  domain: string,
): ServiceRecords {
  const records: ServiceRecords = new Map();
  const at = (name: string): NameRecords => {
    let entry = records.get(name);
    if (entry === undefined) records.set(name, (entry = { addresses: [], srv: [], ptr: [] }));
    return entry;
  };
  const spec = service.spec ?? {};
  const base = `${service.metadata.name}.${service.metadata.namespace}.svc.${domain}`.toLowerCase();
  if (spec.type === 'ExternalName') {
    if (spec.externalName) at(base).cname = trimDot(spec.externalName.toLowerCase());
    return records;
  }
  const clusterIPs = (
    spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : []
  ).filter((ip) => ip !== 'None' && isIP(ip));
  if (spec.clusterIP !== 'None') {
    if (clusterIPs.length === 0) return records; // not allocated yet
    for (const ip of clusterIPs) {
      at(base).addresses.push(ip);
      at(reverseName(ip)).ptr.push(base);
    }
    for (const port of spec.ports ?? []) {
      if (!port.name) continue;
      at(srvName(port.name, port.protocol, base)).srv.push({
        priority: 0,
        weight: 100,
        port: port.port,
        target: base,
      });
    }
    return records;
  }
  // headless: the endpoints themselves
  const publishAll = spec.publishNotReadyAddresses === true;
  const srvByName = new Map<string, SrvData[]>();
  const seen = new Set<string>();
  for (const slice of slices) {
    for (const endpoint of slice.endpoints ?? []) {
      if (!publishAll && endpoint.conditions?.ready === false) continue;
      for (const address of endpoint.addresses ?? []) {
        if (!isIP(address)) continue;
        const endpointName = `${(endpoint.hostname || dashed(address)).toLowerCase()}.${base}`;
        const key = `${endpointName} ${address}`;
        if (!seen.has(key)) {
          seen.add(key);
          at(base).addresses.push(address);
          at(endpointName).addresses.push(address);
          at(reverseName(address)).ptr.push(endpointName);
        }
        for (const port of slice.ports ?? []) {
          if (!port.name || port.port === undefined) continue;
          const name = srvName(port.name, port.protocol, base);
          let list = srvByName.get(name);
          if (list === undefined) srvByName.set(name, (list = []));
          if (!list.some((s) => s.target === endpointName && s.port === port.port))
            list.push({ priority: 0, weight: 0, port: port.port, target: endpointName });
        }
      }
    }
  }
  // CoreDNS shares a weight of 100 among the records of one name
  for (const [name, list] of srvByName) {
    const weight = Math.floor(100 / list.length);
    at(name).srv.push(...list.map((s) => ({ ...s, weight })));
  }
  for (const entry of records.values()) entry.addresses = [...new Set(entry.addresses)];
  return records;
}

/**
 * Every Service's records, replaced one Service at a time, and the lookups the server makes.
 */
export class ClusterRecords {
  private readonly byService = new Map<string, ServiceRecords>();
  /** name → the Services (keys) that give it records */
  private readonly names = new Map<string, Set<string>>();
  /** name → how many record names lie at or below it (in the cluster domain): it exists */
  private readonly existing = new Map<string, number>();
  private readonly domainSuffix: string;
  private changes = 0;

  constructor(
    private readonly zone: ClusterZone,
    /** The SOA serial's start: each change adds one (the caller gives the clock's seconds). */
    private readonly serialBase = 1,
  ) {
    this.domainSuffix = `.${zone.domain}`;
  }

  /** Counts every change; the server drops what it cached from an older generation. */
  get generation(): number {
    return this.changes;
  }

  /** Replaces what `key` (`namespace/name`) contributes; `undefined` removes it. */
  setService(key: string, records: ServiceRecords | undefined): void {
    const old = this.byService.get(key);
    if (old === undefined && (records === undefined || records.size === 0)) return;
    if (old !== undefined) {
      for (const name of old.keys()) {
        const owners = this.names.get(name)!;
        owners.delete(key);
        if (owners.size === 0) this.names.delete(name);
        this.count(name, -1);
      }
    }
    if (records === undefined || records.size === 0) this.byService.delete(key);
    else {
      this.byService.set(key, records);
      for (const name of records.keys()) {
        let owners = this.names.get(name);
        if (owners === undefined) this.names.set(name, (owners = new Set()));
        owners.add(key);
        this.count(name, +1);
      }
    }
    this.changes++;
  }

  /** The services whose records this index holds (their keys). */
  serviceKeys(): IterableIterator<string> {
    return this.byService.keys();
  }

  /**
   * The answer for `name` (as asked: any case, trailing dot or not) and `type`, or undefined when
   * the name is not the cluster's (forward it).
   */
  lookup(name: string, type: string): ClusterAnswer | undefined {
    const asked = trimDot(name);
    const lower = asked.toLowerCase();
    if (REVERSE_SUFFIXES.some((suffix) => lower.endsWith(suffix)))
      return this.lookupReverse(asked, lower, type);
    if (lower !== this.zone.domain && !lower.endsWith(this.domainSuffix)) return undefined;
    if (lower === this.zone.domain) return this.apex(asked, type);
    const relative = lower.slice(0, -this.domainSuffix.length).split('.');
    if (relative[relative.length - 1] === 'pod') return this.pod(asked, relative, type);
    if (lower === `dns-version.${this.zone.domain}`)
      return type === 'TXT'
        ? this.answer([{ type: 'TXT', name: asked, ttl: CLUSTER_TTL, class: 'IN', data: DNS_SCHEMA_VERSION }])
        : this.noData();
    if (lower === `ns.dns.${this.zone.domain}`)
      return this.addressAnswer(asked, [this.zone.dnsAddress], type) ?? this.noData();
    const records = this.merged(lower);
    if (records === undefined) return this.existing.has(lower) ? this.noData() : this.nxDomain();
    if (records.cname !== undefined) {
      const cname: Answer = {
        type: 'CNAME',
        name: asked,
        ttl: CLUSTER_TTL,
        class: 'IN',
        data: records.cname,
      };
      return type === 'CNAME' ? this.answer([cname]) : { ...this.answer([cname]), cname: records.cname };
    }
    if (type === 'SRV' && records.srv.length > 0) {
      const answers: Answer[] = records.srv.map((data) => ({
        type: 'SRV',
        name: asked,
        ttl: CLUSTER_TTL,
        class: 'IN',
        data,
      }));
      const additionals: Answer[] = [];
      for (const target of new Set(records.srv.map((s) => s.target)))
        for (const address of this.merged(target)?.addresses ?? [])
          additionals.push(addressRecord(target, address));
      return { ...this.answer(answers), additionals };
    }
    return this.addressAnswer(asked, records.addresses, type) ?? this.noData();
  }

  /** The records every Service gives `name`, merged; undefined when none. */
  private merged(name: string): NameRecords | undefined {
    const owners = this.names.get(name);
    if (owners === undefined) return undefined;
    const merged: NameRecords = { addresses: [], srv: [], ptr: [] };
    for (const owner of owners) {
      const records = this.byService.get(owner)!.get(name)!;
      merged.addresses.push(...records.addresses);
      merged.srv.push(...records.srv);
      merged.ptr.push(...records.ptr);
      merged.cname ??= records.cname;
    }
    return merged;
  }

  private lookupReverse(asked: string, lower: string, type: string): ClusterAnswer | undefined {
    const records = this.merged(lower);
    if (records === undefined || records.ptr.length === 0) return undefined;
    if (type !== 'PTR') return this.noData();
    return this.answer(
      [...new Set(records.ptr)].map((target) => ({
        type: 'PTR',
        name: asked,
        ttl: CLUSTER_TTL,
        class: 'IN',
        data: target,
      })),
    );
  }

  private apex(asked: string, type: string): ClusterAnswer {
    if (type === 'SOA') return this.answer([{ ...this.soa(), name: asked }]);
    if (type === 'NS')
      return {
        ...this.answer([
          { type: 'NS', name: asked, ttl: CLUSTER_TTL, class: 'IN', data: `ns.dns.${this.zone.domain}` },
        ]),
        additionals: [addressRecord(`ns.dns.${this.zone.domain}`, this.zone.dnsAddress)],
      };
    return this.noData();
  }

  /** `<a-b-c-d>.<ns>.pod.<domain>`: the address the first label spells, in any namespace. */
  private pod(asked: string, relative: string[], type: string): ClusterAnswer {
    if (relative.length < 3) return this.noData(); // pod.<domain>, <ns>.pod.<domain>
    if (relative.length > 3) return this.nxDomain();
    const label = relative[0]!;
    const address = label.includes('.') ? undefined : undashed(label);
    if (address === undefined) return this.nxDomain();
    return this.addressAnswer(asked, [address], type) ?? this.noData();
  }

  /** A or AAAA records of the addresses of that family; undefined when the type is neither or none match. */
  private addressAnswer(
    asked: string,
    addresses: readonly string[],
    type: string,
  ): ClusterAnswer | undefined {
    const family = type === 'A' ? isIPv4 : type === 'AAAA' ? isIPv6 : type === 'ANY' ? isIP : undefined;
    if (family === undefined) return undefined;
    const answers = addresses.filter((a) => family(a)).map((a) => addressRecord(asked, a));
    return answers.length > 0 ? this.answer(answers) : undefined;
  }

  private answer(answers: Answer[]): ClusterAnswer {
    return { rcode: 'NOERROR', answers, authorities: [], additionals: [] };
  }

  private noData(): ClusterAnswer {
    return { rcode: 'NOERROR', answers: [], authorities: [this.soa()], additionals: [] };
  }

  private nxDomain(): ClusterAnswer {
    return { rcode: 'NXDOMAIN', answers: [], authorities: [this.soa()], additionals: [] };
  }

  /** The zone's SOA: CoreDNS's shape, the serial moving with every change. */
  soa(): Answer {
    return {
      type: 'SOA',
      name: this.zone.domain,
      ttl: CLUSTER_TTL,
      class: 'IN',
      data: {
        mname: `ns.dns.${this.zone.domain}`,
        rname: `hostmaster.${this.zone.domain}`,
        serial: (this.serialBase + this.changes) >>> 0,
        refresh: 7200,
        retry: 1800,
        expire: 86400,
        minimum: CLUSTER_TTL,
      },
    };
  }

  /** Counts `name` and each name above it, up to the domain, as existing (delta ±1). */
  private count(name: string, delta: number): void {
    if (!name.endsWith(this.domainSuffix)) return; // reverse names exist only with their PTR
    for (let at = name; at.length > this.zone.domain.length; at = at.slice(at.indexOf('.') + 1)) {
      const n = (this.existing.get(at) ?? 0) + delta;
      if (n > 0) this.existing.set(at, n);
      else this.existing.delete(at);
    }
  }
}

function addressRecord(name: string, address: string): Answer {
  return { type: isIPv4(address) ? 'A' : 'AAAA', name, ttl: CLUSTER_TTL, class: 'IN', data: address };
}

function isIP(text: string): boolean {
  return isIPv4(text) || isIPv6(text);
}

function srvName(portName: string, protocol: string | undefined, base: string): string {
  return `_${portName.toLowerCase()}._${(protocol ?? 'TCP').toLowerCase()}.${base}`;
}

function trimDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/** 10.244.1.5 → 10-244-1-5; fd00::1 → fd00--1 (Kubernetes' pod and endpoint name form). */
export function dashed(address: string): string {
  return address.replace(/[.:]/g, '-');
}

/** The address a dashed label spells, or undefined. */
function undashed(label: string): string | undefined {
  const v4 = label.replace(/-/g, '.');
  if (isIPv4(v4)) return v4;
  const v6 = label.replace(/-/g, ':');
  return isIPv6(v6) ? v6 : undefined;
}

/** The in-addr.arpa / ip6.arpa name of an address. */
export function reverseName(address: string): string {
  if (isIPv4(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  return `${expandIPv6(address).split('').reverse().join('.')}.ip6.arpa`;
}

/** fd00::1 → the 32 hex digits of its 128 bits. */
function expandIPv6(address: string): string {
  const [head = '', tail] = address.split('::');
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const middle = new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...middle, ...right]
    .map((g) => g.padStart(4, '0'))
    .join('')
    .toLowerCase();
}
