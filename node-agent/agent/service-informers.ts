/**
 * The node's view of the cluster's Services and EndpointSlices: one informer of each over the API,
 * every namespace, shared by everything on the node that follows Services (the Service data plane,
 * the cluster DNS). The node authorizer lets a node read both kinds everywhere. Slices are indexed
 * by the Service their `kubernetes.io/service-name` label names (`slicesOfService`).
 */
import type { ApiClient } from '../../proto/client.js';
import type { EndpointSlice, Service } from '../../proto/gen/types.js';
import { apiSource } from '../../proto/informer/api-source.js';
import { Informer } from '../../proto/informer/informer.js';
import type { Logger } from '../../proto/support/logger.js';

export interface ServiceInformers {
  services: Informer<Service>;
  endpointSlices: Informer<EndpointSlice>;
}

/** The label that names a slice's Service (in the slice's namespace). */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const SLICES_BY_SERVICE = 'service';

/** `namespace/name` of the Service a slice belongs to; undefined when its label names none. */
export function serviceKeyOfSlice(slice: EndpointSlice): string | undefined {
  const name = slice.metadata.labels?.[SERVICE_NAME_LABEL];
  return name ? `${slice.metadata.namespace}/${name}` : undefined;
}

function byService(slice: EndpointSlice): string[] {
  const key = serviceKeyOfSlice(slice);
  return key === undefined ? [] : [key];
}

export function serviceInformers(api: ApiClient, log: Logger): ServiceInformers {
  const endpointSlices = new Informer<EndpointSlice>({
    source: apiSource<EndpointSlice>({ api, kind: 'EndpointSlice' }),
    logger: log,
  });
  endpointSlices.addIndex(SLICES_BY_SERVICE, byService);
  return {
    services: new Informer<Service>({ source: apiSource<Service>({ api, kind: 'Service' }), logger: log }),
    endpointSlices,
  };
}

/** The slices of the Service `namespace/name`, as the informer holds them now. */
export function slicesOfService(informers: ServiceInformers, serviceKey: string): EndpointSlice[] {
  return informers.endpointSlices.byIndex(SLICES_BY_SERVICE, serviceKey).map((cached) => cached.object);
}
