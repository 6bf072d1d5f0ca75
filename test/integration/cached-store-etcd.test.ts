/**
 * CachedStore over a real etcd passes the Store conformance suite. Its caches start on each
 * resource's first watch here (not primed): a cache primed just before the suite compacts would
 * race the creation of its own etcd watch against the compaction, lose its place and, as designed,
 * tell its watchers to list again, which a plain store's watchers never hear. The cache-served
 * paths are run by the suite over MemoryStore (controlplane/store/cached-store.test.ts) and
 * against etcd by the API server's tests.
 */
import { describe } from 'node:test';
import { CachedStore } from '../../controlplane/store/cached-store.js';
import { EtcdStore } from '../../controlplane/store/etcd-store.js';
import { storeConformance } from '../../controlplane/store/store-conformance.js';
import { withEtcd } from '../harness/servers.js';

describe('CachedStore over a real etcd', () => {
  const etcd = withEtcd();
  let fixtures = 0;
  storeConformance('CachedStore over EtcdStore', async () => {
    const server = etcd();
    const inner = new EtcdStore({
      endpoints: [server.endpoint],
      prefix: `/cached-${++fixtures}`,
      timeoutMs: 2000,
    });
    return {
      store: new CachedStore(inner),
      endpoint: server.endpoint,
      deadlineMs: 2000,
      stopBackend: () => server.stop(),
      startBackend: () => server.start(),
    };
  });
});
