/**
 * Which registry an image reference names, and how the client may talk to it.
 *
 *   host:port/repo:tag, host.name/repo…, localhost/repo   the registry the reference names
 *   web:1, team/web:1 (no registry part)                  the cluster registry: the control
 *                                                         plane's HTTP address, under /v2/,
 *                                                         with the client config's bearer token
 *   docker.io/…                                           Docker Hub (registry-1.docker.io)
 *
 * Transport policy: HTTPS with certificate checks, except for loopback registries, tried over
 * plain HTTP first and over HTTPS when the other end turns out to speak TLS, and those the
 * client config marks `insecure`, tried over HTTPS first (without certificate checks) and over
 * plain HTTP when the other end does not speak TLS. The cluster registry uses the scheme of its
 * configured URL, plain HTTP under the same rule or where the caller allows it for that URL (a
 * node agent, for the URL its control plane advertised: ClusterRegistry.allowPlainHttp).
 * Pure: no I/O.
 */
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import type { Digest } from './digest.js';
import { DEFAULT_DOMAIN, parseReference } from './reference.js';

/** The client config's settings for one registry (cli/config.ts `registries`). */
export interface RegistryHostSettings {
  username?: string;
  password?: string;
  /** A bearer token sent as it is, instead of the token flow (or basic auth). */
  token?: string;
  /** Plain HTTP, or TLS without certificate checks, for this registry although it is not loopback. */
  insecure?: boolean;
}

/** The cluster's own registry: where short names go. */
export interface ClusterRegistry {
  /** The control plane's HTTP address, e.g. http://127.0.0.1:7441 (the registry is under /v2/). */
  url: string;
  /** Bearer token (the client config's). */
  token?: string;
  /**
   * Plain HTTP to `url` although its host is not loopback. Only for this URL (a reference naming
   * the host as its registry gets no such leave, nor are certificate checks ever skipped): a node
   * agent sets it for the URL the control plane advertised over TLS the agent verified, on the
   * API server's own host, as the control plane serves its HTTP port without TLS.
   */
  allowPlainHttp?: boolean;
}

export interface RegistryConfig {
  cluster?: ClusterRegistry;
  /** Keyed by host[:port] as references spell it. */
  hosts?: Record<string, RegistryHostSettings>;
}

/** Where one reference lives and how to reach it. */
export interface RegistryLocation {
  /** host[:port] the requests go to (registry-1.docker.io for docker.io). */
  host: string;
  /** What to say in messages: `127.0.0.1:5000`, `the cluster registry (http://…)`. */
  displayName: string;
  /** Base URLs to try in order (see the transport policy above). */
  endpoints: URL[];
  /** Skip certificate checks on HTTPS (insecure registries only). */
  insecureTls: boolean;
  /** The repository on that registry: `library/busybox`, `web`. */
  repository: string;
  tag?: string;
  digest?: Digest;
  /** The name the local image store records it under (the reference as given). */
  localName: string;
  /** Credentials and settings from the client config. */
  settings: RegistryHostSettings;
  /** True for the cluster registry (short names). */
  cluster: boolean;
}

const DOCKER_HUB_API = 'registry-1.docker.io';

/** localhost, 127.0.0.0/8, ::1 (with or without a port). */
export function isLoopbackHost(host: string): boolean {
  const name = hostName(host).toLowerCase();
  return name === 'localhost' || /^127(\.\d{1,3}){3}$/.test(name) || name === '::1' || name === '[::1]';
}

/** The host part of host[:port] (IPv6 in brackets keeps them). */
function hostName(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon >= 0 ? host.slice(0, colon) : host;
}

/** Whether `input` names its registry (docker's rule: a first component with '.', ':' or localhost). */
export function namesRegistry(input: string): boolean {
  const slash = input.indexOf('/');
  if (slash < 0) return false;
  const first = input.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost';
}

/**
 * Resolves `input` (an image reference as a user types it) to its registry. Throws
 * InvalidArgumentError for a malformed reference and FailedPreconditionError when a short name
 * is given but no cluster registry is configured, or plain HTTP is not allowed.
 */
export function locateReference(input: string, config: RegistryConfig = {}): RegistryLocation {
  const parsed = parseReference(input);
  const hosts = config.hosts ?? {};
  if (!namesRegistry(input)) {
    const cluster = config.cluster;
    if (!cluster) {
      throw new FailedPreconditionError(
        `locate image ${JSON.stringify(input)}: a name without a registry (host:port/…) means the cluster registry, and the client config names no cluster (run \`skiff up\`, or give the registry: 127.0.0.1:5000/${input})`,
      );
    }
    let base: URL;
    try {
      base = new URL(cluster.url);
    } catch (err) {
      throw new InvalidArgumentError(
        `locate image ${JSON.stringify(input)}: the cluster's HTTP address ${JSON.stringify(cluster.url)} is not a URL`,
        'http',
        { cause: err },
      );
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new InvalidArgumentError(
        `locate image ${JSON.stringify(input)}: the cluster's HTTP address ${cluster.url} is neither http:// nor https://`,
        'http',
      );
    }
    const settings = { ...(hosts[base.host] ?? {}) };
    if (cluster.token !== undefined && settings.token === undefined) settings.token = cluster.token;
    if (
      base.protocol === 'http:' &&
      !isLoopbackHost(base.host) &&
      !settings.insecure &&
      cluster.allowPlainHttp !== true
    ) {
      throw new FailedPreconditionError(
        `locate image ${JSON.stringify(input)}: the cluster registry ${cluster.url} is plain HTTP on a host that is not loopback; mark it insecure in the client config (registries: ${base.host}: insecure: true) or use https`,
      );
    }
    // docker's normalisation adds library/ to one-component names; on the cluster registry the
    // repository is the path as typed
    const typed = input.replace(/[@:].*$/, '');
    const repository = parsed.path.startsWith('library/') && !typed.includes('/') ? typed : parsed.path;
    const location: RegistryLocation = {
      host: base.host,
      displayName: `the cluster registry (${base.origin})`,
      endpoints: [new URL(base.href.endsWith('/') ? base.href : `${base.href}/`)],
      insecureTls: settings.insecure === true,
      repository,
      localName: input,
      settings,
      cluster: true,
    };
    return withVersion(location, parsed);
  }
  const named = parsed.domain;
  const host = named === DEFAULT_DOMAIN ? DOCKER_HUB_API : named;
  const settings = { ...(hosts[named] ?? hosts[host] ?? {}) };
  // loopback: plain HTTP first (what test and local registries speak; a TLS one says so at
  // once); a registry marked insecure: HTTPS first; any other: HTTPS only
  const endpoints = isLoopbackHost(host)
    ? [new URL(`http://${host}/`), new URL(`https://${host}/`)]
    : settings.insecure === true
      ? [new URL(`https://${host}/`), new URL(`http://${host}/`)]
      : [new URL(`https://${host}/`)];
  return withVersion(
    {
      host,
      displayName: host,
      endpoints,
      insecureTls: settings.insecure === true,
      repository: parsed.path,
      localName: input,
      settings,
      cluster: false,
    },
    parsed,
  );
}

function withVersion(
  location: RegistryLocation,
  parsed: { tag?: string; digest?: Digest },
): RegistryLocation {
  if (parsed.tag !== undefined) location.tag = parsed.tag;
  if (parsed.digest !== undefined) location.digest = parsed.digest;
  return location;
}

/** `host/repo:tag` or `host/repo@digest` for messages. */
export function describeLocation(location: RegistryLocation): string {
  const version = location.digest ? `@${location.digest}` : `:${location.tag ?? 'latest'}`;
  return `${location.cluster ? '' : `${location.host}/`}${location.repository}${version}`;
}
