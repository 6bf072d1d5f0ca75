/** Service and Endpoints: types, ports, cluster IPs and the fields fixed after create. */
import { isIP } from 'node:net';
import type { EndpointSlice, Endpoints, Service } from '../../../proto/gen/types.js';
import { specialAddressProblem } from '../../../proto/special-addresses.js';
import {
  requireInRange,
  requireNonEmpty,
  requireOneOf,
  requireSetOneOf,
  requireValid,
  violation,
} from './field-violation.js';
import { validateLabels } from './meta.js';
import { PROTOCOLS, validatePortReference } from './pod.js';
import {
  checkCidr,
  checkDns1123Label,
  checkDns1123Subdomain,
  checkIp,
  checkPortName,
  checkQualifiedName,
} from './names.js';

export const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
/** Kubernetes' default --service-node-port-range. */
/** Kubernetes' longest ClientIP session affinity: a day. */
const MAX_CLIENT_IP_AFFINITY_SECONDS = 86400;

/**
 * The fields of a LoadBalancer Service (the load balancer's source ranges, class, node ports) and
 * of session affinity and traffic distribution, as Kubernetes 1.32 checks them.
 */
function validateLoadBalancerAndAffinity(service: Service, old: Service | undefined): void {
  const spec = service.spec;
  const type = spec.type || 'ClusterIP';
  const loadBalancer = type === 'LoadBalancer';
  const onlyLoadBalancer = 'may be set only when type is LoadBalancer';
  if (spec.sessionAffinity === 'ClientIP') {
    const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
    if (timeout === undefined) {
      violation(
        'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
        'required when sessionAffinity is ClientIP',
      );
    }
    requireInRange(
      'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
      timeout,
      1,
      MAX_CLIENT_IP_AFFINITY_SECONDS,
    );
  } else if (spec.sessionAffinityConfig !== undefined) {
    violation('spec.sessionAffinityConfig', 'may be set only when sessionAffinity is ClientIP');
  }
  const ranges = spec.loadBalancerSourceRanges ?? [];
  if (ranges.length > 0 && !loadBalancer) violation('spec.loadBalancerSourceRanges', onlyLoadBalancer);
  // Kubernetes tolerates spaces around each range (they came from an annotation once).
  ranges.forEach((range, i) =>
    requireValid(`spec.loadBalancerSourceRanges[${i}]`, range, checkCidr(range.trim())),
  );
  if (spec.allocateLoadBalancerNodePorts !== undefined && !loadBalancer)
    violation('spec.allocateLoadBalancerNodePorts', onlyLoadBalancer);
  if (loadBalancer && spec.allocateLoadBalancerNodePorts === undefined)
    violation('spec.allocateLoadBalancerNodePorts', 'required when type is LoadBalancer');
  if (spec.loadBalancerClass !== undefined) {
    if (!loadBalancer) violation('spec.loadBalancerClass', onlyLoadBalancer);
    requireValid(
      'spec.loadBalancerClass',
      spec.loadBalancerClass,
      checkQualifiedName(spec.loadBalancerClass),
    );
  }
  if (old !== undefined && loadBalancer && (old.spec.type || 'ClusterIP') === 'LoadBalancer') {
    if (spec.loadBalancerClass !== old.spec.loadBalancerClass) {
      violation(
        'spec.loadBalancerClass',
        `field is immutable: was ${JSON.stringify(old.spec.loadBalancerClass ?? null)}, got ${JSON.stringify(spec.loadBalancerClass ?? null)}`,
      );
    }
  }
  const needsHealthCheck = loadBalancer && spec.externalTrafficPolicy === 'Local';
  if (spec.healthCheckNodePort) {
    if (!needsHealthCheck) {
      violation(
        'spec.healthCheckNodePort',
        'may be set only when type is LoadBalancer and externalTrafficPolicy is Local',
      );
    }
    requireInRange('spec.healthCheckNodePort', spec.healthCheckNodePort, 1, 65535);
    const before = old?.spec;
    if (
      before !== undefined &&
      (before.type || 'ClusterIP') === 'LoadBalancer' &&
      before.externalTrafficPolicy === 'Local' &&
      before.healthCheckNodePort &&
      before.healthCheckNodePort !== spec.healthCheckNodePort
    ) {
      violation('spec.healthCheckNodePort', `field is immutable: was ${before.healthCheckNodePort}`);
    }
  }
  requireSetOneOf('spec.trafficDistribution', spec.trafficDistribution, ['PreferClose']);
}

export function validateService(service: Service, old: Service | undefined): void {
  const spec = service.spec;
  requireOneOf('spec.type', spec.type, SERVICE_TYPES);
  requireOneOf('spec.sessionAffinity', spec.sessionAffinity, ['None', 'ClientIP']);
  const type = spec.type || 'ClusterIP';
  const headless = spec.clusterIP === 'None';
  if (type === 'ExternalName') {
    const name = requireNonEmpty(
      'spec.externalName',
      spec.externalName,
      'an ExternalName service needs the DNS name it aliases',
    );
    requireValid('spec.externalName', name, checkDns1123Subdomain(name));
  }
  if (spec.clusterIP && !headless) requireValid('spec.clusterIP', spec.clusterIP, checkIp(spec.clusterIP));
  if (headless && type !== 'ClusterIP')
    violation('spec.clusterIP', `may be "None" (headless) only for type ClusterIP, not ${type}`);
  (spec.clusterIPs ?? []).forEach((ip, i) => {
    if (!(ip === 'None' && headless)) requireValid(`spec.clusterIPs[${i}]`, ip, checkIp(ip));
  });
  if (spec.clusterIP && spec.clusterIPs?.length && spec.clusterIPs[0] !== spec.clusterIP) {
    violation('spec.clusterIPs[0]', `must equal spec.clusterIP "${spec.clusterIP}"`);
  }
  (spec.externalIPs ?? []).forEach((ip, i) =>
    requireValid(`spec.externalIPs[${i}]`, ip, checkIp(ip) ?? specialAddressProblem(ip)),
  );
  if (spec.loadBalancerIP)
    requireValid('spec.loadBalancerIP', spec.loadBalancerIP, checkIp(spec.loadBalancerIP));
  requireOneOf('spec.externalTrafficPolicy', spec.externalTrafficPolicy, ['Cluster', 'Local']);
  requireOneOf('spec.internalTrafficPolicy', spec.internalTrafficPolicy, ['Cluster', 'Local']);
  requireOneOf('spec.ipFamilyPolicy', spec.ipFamilyPolicy, [
    'SingleStack',
    'PreferDualStack',
    'RequireDualStack',
  ]);
  (spec.ipFamilies ?? []).forEach((family, i) =>
    requireOneOf(`spec.ipFamilies[${i}]`, family, ['IPv4', 'IPv6']),
  );
  validateLabels('spec.selector', spec.selector);

  const ports = spec.ports ?? [];
  if (ports.length === 0 && type !== 'ExternalName' && !headless) {
    violation(
      'spec.ports',
      'required: a service needs at least one port (unless it is headless, clusterIP "None")',
    );
  }
  const names = new Set<string>();
  const numbers = new Set<string>();
  ports.forEach((port, i) => {
    const at = `spec.ports[${i}]`;
    if (ports.length > 1 && !port.name)
      violation(`${at}.name`, 'required: when a service has several ports, each needs a name');
    if (port.name) {
      requireValid(`${at}.name`, port.name, checkPortName(port.name));
      if (names.has(port.name)) violation(`${at}.name`, `duplicate port name "${port.name}"`);
      names.add(port.name);
    }
    requireInRange(`${at}.port`, port.port, 1, 65535);
    requireOneOf(`${at}.protocol`, port.protocol, PROTOCOLS);
    const key = `${port.port}/${port.protocol || 'TCP'}`;
    if (numbers.has(key)) violation(`${at}.port`, `duplicate port ${key}`);
    numbers.add(key);
    if (port.targetPort !== undefined) validatePortReference(`${at}.targetPort`, port.targetPort);
    if (port.nodePort) {
      if (type !== 'NodePort' && type !== 'LoadBalancer') {
        violation(`${at}.nodePort`, `may be set only for type NodePort or LoadBalancer, not ${type}`);
      }
      // the configured range (--service-node-port-range) is checked where node ports are allocated
      requireInRange(`${at}.nodePort`, port.nodePort, 1, 65535);
    }
  });

  validateLoadBalancerAndAffinity(service, old);

  if (
    old &&
    old.spec.clusterIP &&
    spec.clusterIP !== old.spec.clusterIP &&
    type !== 'ExternalName' &&
    (old.spec.type || 'ClusterIP') !== 'ExternalName'
  ) {
    violation(
      'spec.clusterIP',
      `field is immutable: was "${old.spec.clusterIP}", got "${spec.clusterIP ?? ''}"`,
    );
  }
}

export function validateEndpoints(endpoints: Endpoints): void {
  (endpoints.subsets ?? []).forEach((subset, i) => {
    const at = `subsets[${i}]`;
    for (const field of ['addresses', 'notReadyAddresses'] as const) {
      (subset[field] ?? []).forEach((address, j) => {
        requireValid(
          `${at}.${field}[${j}].ip`,
          address.ip,
          checkIp(address.ip) ?? specialAddressProblem(address.ip),
        );
        if (address.nodeName)
          requireValid(
            `${at}.${field}[${j}].nodeName`,
            address.nodeName,
            checkDns1123Subdomain(address.nodeName),
          );
      });
    }
    const ports = subset.ports ?? [];
    ports.forEach((port, j) => {
      if (ports.length > 1 && !port.name)
        violation(`${at}.ports[${j}].name`, 'required when a subset has several ports');
      if (port.name) requireValid(`${at}.ports[${j}].name`, port.name, checkPortName(port.name));
      requireInRange(`${at}.ports[${j}].port`, port.port, 1, 65535);
      requireOneOf(`${at}.ports[${j}].protocol`, port.protocol, PROTOCOLS);
    });
  });
}

const MAX_SLICE_ENDPOINTS = 1000;
const MAX_SLICE_PORTS = 100;
const MAX_ENDPOINT_ADDRESSES = 100;

function addressProblem(addressType: string, address: string): string | undefined {
  const family = isIP(address);
  if (addressType === 'IPv4')
    return family === 4 ? specialAddressProblem(address) : 'must be an IPv4 address';
  if (addressType === 'IPv6')
    return family === 6 ? specialAddressProblem(address) : 'must be an IPv6 address';
  return checkDns1123Subdomain(address);
}

export function validateEndpointSlice(slice: EndpointSlice, old: EndpointSlice | undefined): void {
  const addressType = requireNonEmpty('addressType', slice.addressType, 'IPv4, IPv6 or FQDN');
  requireOneOf('addressType', addressType, ['IPv4', 'IPv6', 'FQDN']);
  if (old !== undefined && old.addressType !== addressType) {
    violation('addressType', `field is immutable: was ${old.addressType ?? ''}, got ${addressType}`);
  }
  const endpoints = slice.endpoints ?? [];
  if (endpoints.length > MAX_SLICE_ENDPOINTS) {
    violation('endpoints', `must have at most ${MAX_SLICE_ENDPOINTS} items, got ${endpoints.length}`);
  }
  endpoints.forEach((endpoint, i) => {
    const at = `endpoints[${i}]`;
    const addresses = endpoint.addresses ?? [];
    if (addresses.length === 0) violation(`${at}.addresses`, 'required: at least one address');
    if (addresses.length > MAX_ENDPOINT_ADDRESSES) {
      violation(
        `${at}.addresses`,
        `must have at most ${MAX_ENDPOINT_ADDRESSES} items, got ${addresses.length}`,
      );
    }
    addresses.forEach((address, j) =>
      requireValid(`${at}.addresses[${j}]`, address, addressProblem(addressType, address)),
    );
    if (endpoint.hostname)
      requireValid(`${at}.hostname`, endpoint.hostname, checkDns1123Label(endpoint.hostname));
    if (endpoint.nodeName)
      requireValid(`${at}.nodeName`, endpoint.nodeName, checkDns1123Subdomain(endpoint.nodeName));
  });
  const ports = slice.ports ?? [];
  if (ports.length > MAX_SLICE_PORTS)
    violation('ports', `must have at most ${MAX_SLICE_PORTS} items, got ${ports.length}`);
  const names = new Set<string>();
  ports.forEach((port, i) => {
    const at = `ports[${i}]`;
    const name = port.name ?? '';
    if (name !== '') requireValid(`${at}.name`, name, checkDns1123Label(name));
    if (names.has(name)) violation(`${at}.name`, `duplicate port name "${name}"`);
    names.add(name);
    requireInRange(`${at}.port`, port.port, 1, 65535);
    requireOneOf(`${at}.protocol`, port.protocol, PROTOCOLS);
  });
}
