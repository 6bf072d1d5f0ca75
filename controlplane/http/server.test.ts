import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { componentLogger } from '../../proto/support/logger.js';
import { request } from 'node:http';
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

  test('several comma-separated addresses: each serves the same routes, the first is reported', async () => {
    const server = new HttpServer({
      address: '127.0.0.1:0,127.0.0.2:0',
      readinessChecks: [],
      metrics: new Registry(),
      log: componentLogger('http-test'),
    });
    const address = await server.listen();
    try {
      assert.match(address, /^127\.0\.0\.1:\d+$/);
      assert.equal((await fetch(`http://${address}/healthz`)).status, 200);
      const second = (server as unknown as { servers: import('node:http').Server[] }).servers[1]!;
      const { port } = second.address() as import('node:net').AddressInfo;
      assert.equal((await fetch(`http://127.0.0.2:${port}/healthz`)).status, 200);
    } finally {
      await server.close();
    }
  });

  test('an address list with a malformed entry is refused naming the flag', () => {
    assert.throws(
      () =>
        new HttpServer({
          address: '127.0.0.1:0,nonsense',
          readinessChecks: [],
          metrics: new Registry(),
          log: componentLogger('http-test'),
        }),
      /--http-addr "nonsense": want host:port/,
    );
  });

  test('routes match the path as it was sent: dot segments are not resolved into another route', async () => {
    const server = new HttpServer({
      address: '127.0.0.1:0',
      readinessChecks: [],
      metrics: new Registry(),
      log: componentLogger('http-test'),
    });
    const address = await server.listen();
    const [host, port] = address.split(':') as [string, string];
    // node:http sends the path as given (fetch would resolve the dots first)
    const get = (path: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = request({ host, port: Number(port), path, method: 'GET' }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      assert.equal((await get('/metrics')).status, 200);
      for (const path of [
        '/v2/../metrics',
        '/nothing/%2e%2e/metrics',
        '/x/%2E%2e/readyz',
        '/./metrics',
        '/metrics/..',
        'http://localhost/metrics',
      ]) {
        const answer = await get(path);
        assert.equal(answer.status, 404, path);
        assert.match(answer.body, /no handler for/, path);
      }
    } finally {
      await server.close();
    }
  });
});
