/** Strategies of the discovery.k8s.io/v1 kinds. */
import type { EndpointSlice } from '../../../proto/gen/types.js';
import { kindInfoOf } from '../../../proto/kinds.js';
import { defaultEndpointSlice } from '../defaulting.js';
import { checkDns1123Subdomain } from '../validation/names.js';
import { validateEndpointSlice } from '../validation/service.js';
import type { KindStrategy } from './strategy.js';

export const endpointSliceStrategy: KindStrategy<EndpointSlice> = {
  info: kindInfoOf('EndpointSlice'),
  nameRule: checkDns1123Subdomain,
  defaults: defaultEndpointSlice,
  validate: validateEndpointSlice,
  statusSubresource: false,
  selectableFields: { addressType: (slice) => slice.addressType ?? '' },
};
