/** Where the control planes' leader election keeps its Lease (`kube-system/skiff-control-plane`). */
export const LEADER_LEASE_NAMESPACE = 'kube-system';
export const LEADER_LEASE_NAME = 'skiff-control-plane';
