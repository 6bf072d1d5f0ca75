/** Strategies of the coordination.k8s.io/v1 kinds. */
import type { Lease } from '../../../proto/gen/types.js';
import { kindInfoOf } from '../../../proto/kinds.js';
import { checkDns1123Subdomain } from '../validation/names.js';
import { validateLease } from '../validation/scheduling-coordination.js';
import type { KindStrategy } from './strategy.js';
import { LEADER_LEASE_NAME, LEADER_LEASE_NAMESPACE } from '../../leader/leader-lease.js';

export const leaseStrategy: KindStrategy<Lease> = {
  info: kindInfoOf('Lease'),
  nameRule: checkDns1123Subdomain,
  defaults: (lease) => {
    lease.spec ??= {};
  },
  validate: validateLease,
  statusSubresource: false,
  selectableFields: { 'spec.holderIdentity': (lease) => lease.spec.holderIdentity ?? '' },
  // a write through the API would drop its etcd lease (the key would never expire, and no
  // standby would lead again) or, deleted, let a second leader in beside the first
  keptBelowTheApi: (namespace, name) =>
    namespace === LEADER_LEASE_NAMESPACE && name === LEADER_LEASE_NAME
      ? "it is the control planes' leader election, kept by the leading control plane under an etcd lease; it may be read, not written (to move leadership, stop the leading control plane)"
      : undefined,
};
