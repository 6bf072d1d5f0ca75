import { describe } from 'node:test';
import { withEtcd } from '../../test/harness/servers.js';
import { EtcdStore } from './etcd-store.js';
import { storeConformance } from './store-conformance.js';

describe('EtcdStore against a real etcd', () => {
  const etcd = withEtcd();
  let fixtures = 0;
  const deadlineMs = 2000;
  storeConformance('EtcdStore', async () => {
    const server = etcd();
    return {
      store: new EtcdStore({
        endpoints: [server.endpoint],
        prefix: `/conformance-${++fixtures}`,
        timeoutMs: deadlineMs,
      }),
      endpoint: server.endpoint,
      deadlineMs,
      stopBackend: () => server.stop(),
      startBackend: () => server.start(),
    };
  });
});
