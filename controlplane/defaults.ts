/**
 * The control plane's default addresses and etcd prefix. Kept apart from main.ts so the CLI can
 * show them in `--help` without loading the whole control plane (etcd, NATS, gRPC) on every verb.
 */
export const DEFAULT_API_ADDR = '127.0.0.1:7440';
export const DEFAULT_HTTP_ADDR = '127.0.0.1:7441';
export const DEFAULT_ETCD_PREFIX = '/skiff';
