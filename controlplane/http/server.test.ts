import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { componentLogger } from '../../proto/support/logger.js';
import { Registry } from 'prom-client';
import { cachedReadiness, HttpServer, type ReadinessReport } from './server.js';

describe('readiness', () => {
  test('callers within the cache time share one evaluation, concurrent callers share the one running', async () => {
    let clock = 0;
    let evaluations = 0;
    let release: () => void = () => undefined;
    const readiness = cachedReadiness(
      () => {
        evaluations++;
        return new Promise<ReadinessReport>((resolve) => {
          release = () => resolve({ ready: true, checks: [] });
        });
      },
      1000,
      () => clock,
    );
    const burst = Array.from({ length: 100 }, () => readiness());
    release();
    await Promise.all(burst);
    assert.equal(evaluations, 1);
    clock = 999;
    await readiness();
    assert.equal(evaluations, 1);
    clock = 1000;
    const again = readiness();
    release();
    await again;
    assert.equal(evaluations, 2);
  });

  test('/readyz gives the failing reason only with ?verbose, and asks etcd at most once per second', async () => {
    let checks = 0;
    const server = new HttpServer({
      address: '127.0.0.1:0',
      readinessChecks: [
        {
          name: 'etcd',
          check: async () => {
            checks++;
            throw new Error('connect ECONNREFUSED 10.1.2.3:2379');
          },
        },
      ],
      metrics: new Registry(),
      log: componentLogger('http-test'),
    });
    const address = await server.listen();
    try {
      const plain = await fetch(`http://${address}/readyz`);
      assert.equal(plain.status, 503);
      const body = await plain.text();
      assert.match(body, /\[-\] etcd failed/);
      assert.doesNotMatch(body, /ECONNREFUSED|10\.1\.2\.3/);
      const verbose = await fetch(`http://${address}/readyz?verbose`);
      assert.match(await verbose.text(), /etcd failed: connect ECONNREFUSED 10\.1\.2\.3:2379/);
      await Promise.all(
        Array.from({ length: 20 }, () => fetch(`http://${address}/readyz`).then((r) => r.text())),
      );
      assert.equal(checks, 1);
    } finally {
      await server.close();
    }
  });
});
