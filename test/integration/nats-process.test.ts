import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { startNats, type NatsProcess } from '../../cli/up/nats-process.js';

describe('startNats', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-nats-process-'));
  const started: NatsProcess[] = [];
  after(async () => {
    await Promise.all(started.map((nats) => nats.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('starts with JetStream on loopback, serves clients, and stops', async () => {
    const nats = await startNats({ storeDir: join(dir, 'js') });
    started.push(nats);
    assert.match(nats.endpoint, /^nats:\/\/127\.0\.0\.1:\d+$/);
    const connection = await connect({ servers: nats.endpoint });
    try {
      const info = await connection.jetstreamManager().then((jsm) => jsm.getAccountInfo());
      assert.equal(typeof info.streams, 'number');
    } finally {
      await connection.close();
    }
    const varz = (await (await fetch(`${nats.monitorUrl}/varz`)).json()) as { host: string };
    assert.equal(varz.host, '127.0.0.1', 'bound to loopback only');
    await nats.stop();
    await assert.rejects(fetch(`${nats.monitorUrl}/healthz`));
  });

  test('a preferred port that is taken falls back to a free one', async () => {
    const first = await startNats({ storeDir: join(dir, 'a') });
    started.push(first);
    const second = await startNats({ storeDir: join(dir, 'b'), preferredPort: first.port });
    started.push(second);
    assert.notEqual(second.port, first.port);
  });
});
