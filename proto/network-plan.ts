/**
 * The cluster-wide network settings every node must agree on, beyond the address plan's CIDRs: how
 * nodes route each other's pod CIDRs, and where the cluster DNS answers. The control plane holds
 * them (its flags) and tells agents through Version. Pure.
 */
import { InvalidArgumentError } from './errors.js';
import { cidrContains, formatIPv4, parseCidr, parseIPv4 } from './cidr.js';

/**
 * `host-gw`: a route to each other node's pod CIDR via that node's address (nodes on one L2
 * segment); `vxlan`: a kernel VXLAN device per node, so nodes on different subnets work too.
 */
export type NetworkBackend = 'host-gw' | 'vxlan';
export const NETWORK_BACKENDS: readonly NetworkBackend[] = ['host-gw', 'vxlan'];
export const DEFAULT_NETWORK_BACKEND: NetworkBackend = 'host-gw';
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';
/** The cluster DNS's Service (kubeadm's name), `namespace/name`: at the cluster DNS address, answered by every node. */
export const CLUSTER_DNS_SERVICE = 'kube-system/kube-dns';
/** Kubernetes' defaults: pods' addresses (a block of it per node) and Services' virtual addresses. */
export const DEFAULT_CLUSTER_CIDR = '10.244.0.0/16';
export const DEFAULT_SERVICE_CIDR = '10.96.0.0/12';

const DOMAIN_RE = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** A cluster domain is a lower-case DNS name (`cluster.local`), given without a trailing dot. */
export function parseClusterDomain(text: string, field = '--cluster-domain'): string {
  if (DOMAIN_RE.test(text)) return text;
  throw new InvalidArgumentError(
    `${field}: "${text}" is not a DNS domain (lower-case labels of letters, digits and '-', joined by dots, e.g. cluster.local)`,
    field,
  );
}

export function parseNetworkBackend(text: string, field = '--network-backend'): NetworkBackend {
  if ((NETWORK_BACKENDS as readonly string[]).includes(text)) return text as NetworkBackend;
  throw new InvalidArgumentError(
    `${field}: "${text}" is not a network backend; use one of ${NETWORK_BACKENDS.join(', ')}`,
    field,
  );
}

/** The cluster DNS Service's default address: the service CIDR's tenth address (10.96.0.10), as kubeadm picks it. */
export function clusterDNSAddress(serviceCIDR: string): string {
  return formatIPv4(parseCidr(serviceCIDR, '--service-cidr').base + 10);
}

/** Checks a given cluster DNS address lies in the service CIDR (the API allocates it from there). */
export function checkClusterDNS(address: string, serviceCIDR: string, field = '--cluster-dns'): string {
  const cidr = parseCidr(serviceCIDR, '--service-cidr');
  if (!cidrContains(cidr, parseIPv4(address, field)))
    throw new InvalidArgumentError(`${field}: ${address} is outside the service CIDR ${cidr.text}`, field);
  return address;
}
