/**
 * Where an agent pulls short image names (`web:1`) from: the cluster registry, under the HTTP
 * address the control plane's Version names. Pure.
 *
 * The control plane serves that port without TLS, and the registry client refuses plain HTTP to
 * a host that is not loopback unless told otherwise. An agent allows it for this one URL only when
 *   - it learned the URL over TLS it verified (the cluster CA: its node certificate's, or --ca), so
 *     the URL is the control plane's word and not something on the path's, and
 *   - the URL's host is the API server's own (--server), which the operator already chose to
 *     reach the control plane by: the agent is never sent to a third host over plain HTTP.
 * What is left is the network between the node and the control plane: image bytes are checked
 * against their digests, but the node's pull token (read-only, a day) and the tag → manifest
 * answer cross it in the clear. Serving the HTTP port with TLS is the remedy (not done yet).
 */
export interface ClusterRegistryAddress {
  /** The control plane's HTTP URL as this node reaches it, without a trailing slash. */
  url: string;
  /** Plain HTTP allowed to `url` although its host is not loopback (see above). */
  allowPlainHttp: boolean;
}

/**
 * `httpUrl` as the control plane advertised it (a wildcard bind means the --server host), and
 * whether plain HTTP to it is allowed; undefined when the control plane names no HTTP address.
 */
export function clusterRegistryAddress(
  httpUrl: string,
  server: string,
  /** The API connection verifies the server against the cluster CA. */
  apiVerified: boolean,
): ClusterRegistryAddress | undefined {
  if (!httpUrl) return undefined;
  const url = new URL(httpUrl);
  const serverHost = server.slice(0, server.lastIndexOf(':'));
  if (url.hostname === '0.0.0.0' || url.hostname === '[::]') url.hostname = serverHost;
  return {
    url: url.toString().replace(/\/$/, ''),
    allowPlainHttp: url.protocol === 'http:' && apiVerified && sameHost(url.hostname, serverHost),
  };
}

function sameHost(a: string, b: string): boolean {
  const bare = (host: string) => host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return bare(a) === bare(b);
}
