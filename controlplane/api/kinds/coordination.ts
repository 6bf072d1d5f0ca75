/** Strategies of the coordination.k8s.io/v1 kinds. */
import type { Lease } from '../../../proto/gen/types.js';
import { kindInfoOf } from '../../../proto/kinds.js';
import { checkDns1123Subdomain } from '../validation/names.js';
import { validateLease } from '../validation/scheduling-coordination.js';
import type { KindStrategy } from './strategy.js';

export const leaseStrategy: KindStrategy<Lease> = {
  info: kindInfoOf('Lease'),
  nameRule: checkDns1123Subdomain,
  defaults: (lease) => {
    lease.spec ??= {};
  },
  validate: validateLease,
  statusSubresource: false,
  selectableFields: { 'spec.holderIdentity': (lease) => lease.spec.holderIdentity ?? '' },
};
