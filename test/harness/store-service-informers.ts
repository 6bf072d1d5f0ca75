/**
 * A node's pair of Service and EndpointSlice informers (node-agent/agent/service-informers.ts)
 * over a Store in this process instead of the API: for the Service proxy's unit test and bench.
 */
import { storeSource } from '../../controlplane/store/store-source.js';
import type { Store } from '../../controlplane/store/store.js';
import { serviceInformersOver, type ServiceInformers } from '../../node-agent/agent/service-informers.js';
import { decodeObject } from '../../proto/objects.js';
import type { Logger } from '../../proto/support/logger.js';

export function storeServiceInformers(store: Store, log: Logger): ServiceInformers {
  return serviceInformersOver(
    {
      services: storeSource({ store, resource: 'services', decode: (b) => decodeObject('Service', b) }),
      endpointSlices: storeSource({
        store,
        resource: 'endpointslices',
        decode: (b) => decodeObject('EndpointSlice', b),
      }),
    },
    log,
  );
}
