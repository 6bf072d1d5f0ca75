/**
 * The node's view of the cluster's Services and EndpointSlices: one informer of each over the API,
 * every namespace, shared by everything on the node that follows Services (the Service data plane,
 * the cluster DNS). The node authorizer lets a node read both kinds everywhere. Slices are indexed
 * by the Service their `kubernetes.io/service-name` label names (`slicesOfService`).
 */
import type { ApiClient } from '../../proto/client.js';
import { serviceKeyOfSlice } from '../../proto/endpoint-slices.js';
import type { EndpointSlice, Service } from '../../proto/gen/types.js';
import { apiSource } from '../../proto/informer/api-source.js';
import { Informer } from '../../proto/informer/informer.js';
import type { ListWatchSource } from '../../proto/informer/list-watch-source.js';
import type { Logger } from '../../proto/support/logger.js';

export interface ServiceInformers {
  services: Informer<Service>;
  endpointSlices: Informer<EndpointSlice>;
}

/** The index of `endpointSlices` that files each slice under its Service's `namespace/name`. */
export const SLICES_BY_SERVICE = 'service';

function slicesByService(slice: EndpointSlice): string[] {
  const key = serviceKeyOfSlice(slice);
  return key === undefined ? [] : [key];
}

export function serviceInformers(api: ApiClient, log: Logger): ServiceInformers {
  return serviceInformersOver(
    {
      services: apiSource<Service>({ api, kind: 'Service' }),
      endpointSlices: apiSource<EndpointSlice>({ api, kind: 'EndpointSlice' }),
    },
    log,
  );
}

/** The same pair over other sources (a Store in this process, for tests and benches). */
export function serviceInformersOver(
  sources: { services: ListWatchSource<Service>; endpointSlices: ListWatchSource<EndpointSlice> },
  log: Logger,
): ServiceInformers {
  const endpointSlices = new Informer<EndpointSlice>({ source: sources.endpointSlices, logger: log });
  endpointSlices.addIndex(SLICES_BY_SERVICE, slicesByService);
  return { services: new Informer<Service>({ source: sources.services, logger: log }), endpointSlices };
}

/** The slices of the Service `namespace/name`, as the informer holds them now. */
export function slicesOfService(informers: ServiceInformers, serviceKey: string): EndpointSlice[] {
  return informers.endpointSlices.byIndex(SLICES_BY_SERVICE, serviceKey).map((cached) => cached.object);
}
