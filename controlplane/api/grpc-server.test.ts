/**
 * The gRPC binding's DryRunWrites against ApiHandlers on a MemoryStore, through the typed client
 * over loopback: each write judged as its own dry-run Create or Update would be, nothing stored,
 * the client splitting many writes into several calls.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { MAX_DRY_RUN_WRITES } from '../../proto/api-requests.js';
import { connectApi, type ApiClient, type DryRunWrite } from '../../proto/client.js';
import {
  AlreadyExistsError,
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
} from '../../proto/errors.js';
import type { ConfigMap } from '../../proto/gen/types.js';
import { services } from '../../proto/gen/messages.js';
import { fromGrpcError } from '../../proto/grpc-status.js';
import { WireChannel } from '../../proto/grpc-wire-client.js';
import { toEnvelope } from '../../proto/objects.js';
import { componentLogger } from '../../proto/support/logger.js';
import { MemoryStore } from '../store/memory-store.js';
import { Authenticator, hashToken } from './auth.js';
import { createApiService } from './grpc-server.js';
import { ApiHandlers } from './handlers.js';
import { createApiMetrics } from './metrics.js';
import { MemoryTokenStore } from './token-store.js';

const log = componentLogger('grpc-server-test');

const configMap = (
  name: string,
  data: Record<string, string> = { a: '1' },
  namespace = 'default',
): ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace },
  data,
});

describe('DryRunWrites', () => {
  const store = new MemoryStore();
  const handlers = new ApiHandlers({ store, log });
  const tokens = new MemoryTokenStore();
  const server = new grpc.Server();
  let address = '';
  let api: ApiClient;
  let viewer: ApiClient;

  before(async () => {
    await handlers.ensureSystemObjects();
    tokens.records.push({ name: 'editor', role: 'edit', sha256: hashToken('edit-token'), createdAt: '' });
    tokens.records.push({ name: 'viewer', role: 'view', sha256: hashToken('view-token'), createdAt: '' });
    const auth = new Authenticator({ store: tokens, log });
    await auth.load();
    const service = createApiService({
      handlers,
      auth,
      metrics: createApiMetrics(new Registry()),
      log,
      version: 'test',
      etcdEndpoints: 'memory',
    });
    server.addService(service.definition, service.implementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      ),
    );
    address = `127.0.0.1:${port}`;
    api = connectApi({ server: address, token: 'edit-token' });
    viewer = connectApi({ server: address, token: 'view-token' });
  });

  after(async () => {
    api.close();
    viewer.close();
    server.forceShutdown();
    await store.close();
  });

  test('each write is judged as its own dry-run call would judge it, and nothing is stored', async () => {
    const stored = await api.create(configMap('stored'));
    const stale = { ...stored, metadata: { ...stored.metadata, resourceVersion: '1' }, data: { a: '3' } };
    const writes: DryRunWrite[] = [
      { verb: 'create', object: configMap('fresh') },
      { verb: 'create', object: configMap('stored') },
      { verb: 'create', object: configMap('Not-Valid!') },
      { verb: 'create', object: configMap('lost', { a: '1' }, 'no-such-namespace') },
      { verb: 'update', object: { ...stored, data: { a: '2' } } },
      { verb: 'update', object: stale },
      { verb: 'update', object: configMap('absent') },
    ];
    const outcomes = await api.dryRunWrites(writes);
    assert.equal(outcomes.length, writes.length);
    // the same answers as one dry-run call per write
    for (const [i, write] of writes.entries()) {
      const alone = await (
        write.verb === 'create'
          ? api.create(write.object, { dryRun: true })
          : api.update(write.object, { dryRun: true })
      ).then(
        (object) => ({ object, error: undefined }),
        (error: unknown) => ({ object: undefined, error }),
      );
      const outcome = outcomes[i]!;
      if (alone.error !== undefined) {
        assert.equal(outcome.error?.constructor, (alone.error as Error).constructor, `write ${i}`);
        assert.equal(outcome.error?.message, (alone.error as Error).message, `write ${i}`);
      } else {
        assert.equal(outcome.error, undefined, `write ${i}: ${outcome.error?.message}`);
        // uid and creationTimestamp are made anew by each dry run of a create
        const { uid: _u, creationTimestamp: _c, ...meta } = outcome.object!.metadata;
        const { uid: _au, creationTimestamp: _ac, ...aloneMeta } = alone.object!.metadata;
        assert.deepEqual({ ...outcome.object, metadata: meta }, { ...alone.object, metadata: aloneMeta });
      }
    }
    assert.ok(!outcomes[0]!.object!.metadata.resourceVersion, 'a dry run stores nothing: no resourceVersion');
    assert.ok(outcomes[1]!.error instanceof AlreadyExistsError);
    assert.ok(outcomes[2]!.error instanceof InvalidArgumentError);
    assert.equal((outcomes[2]!.error as InvalidArgumentError).field, 'metadata.name');
    assert.ok(outcomes[3]!.error instanceof NotFoundError);
    assert.deepEqual((outcomes[4]!.object as ConfigMap).data, { a: '2' });
    assert.ok(outcomes[5]!.error instanceof ConflictError);
    assert.ok(outcomes[6]!.error instanceof NotFoundError);

    const listed = await api.list('ConfigMap', { namespace: 'default' });
    assert.deepEqual(
      listed.items.map((item) => item.metadata.name),
      ['stored'],
    );
    assert.deepEqual((await api.get('ConfigMap', 'default', 'stored')).data, { a: '1' });
  });

  test('discardAnswer: a write that would succeed answers with the object given, a refused one with its error', async () => {
    const given = configMap('kept');
    const [ok, refused] = await api.dryRunWrites(
      [
        { verb: 'create', object: given },
        { verb: 'create', object: configMap('Bad_Name') },
      ],
      { discardAnswer: true },
    );
    assert.equal(ok!.object, given);
    assert.ok(refused!.error instanceof InvalidArgumentError);
  });

  test('many writes go in several calls and come back in their order', async () => {
    const count = MAX_DRY_RUN_WRITES + 150;
    const writes: DryRunWrite[] = Array.from({ length: count }, (_, i) => ({
      verb: 'create',
      object: i % 97 === 5 ? configMap(`Bad-${i}`) : configMap(`many-${i}`, { n: String(i) }),
    }));
    const outcomes = await api.dryRunWrites(writes);
    assert.equal(outcomes.length, count);
    for (const [i, outcome] of outcomes.entries()) {
      if (i % 97 === 5) assert.ok(outcome.error instanceof InvalidArgumentError, `write ${i}`);
      else assert.deepEqual((outcome.object as ConfigMap).data, { n: String(i) }, `write ${i}`);
    }
    assert.deepEqual(await api.dryRunWrites([]), []);
  });

  test('a call over the limit is refused as a whole, naming the limit', async () => {
    const method = services.Api.methods['DryRunWrites']!;
    const channel = new WireChannel(address, {
      maxReceiveBytes: 64 * 1024 * 1024,
      keepaliveMs: 30_000,
      keepaliveTimeoutMs: 10_000,
    });
    try {
      const writes = Array.from({ length: MAX_DRY_RUN_WRITES + 1 }, (_, i) => ({
        create: toEnvelope(configMap(`over-${i}`)),
      }));
      await assert.rejects(
        channel
          .unary(method.path, method.request.encode({ writes }), {
            metadata: { authorization: 'Bearer edit-token' },
          })
          .catch((err: unknown) => {
            throw fromGrpcError(err, address);
          }),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === 'writes' &&
          err.message.includes(`over the limit of ${MAX_DRY_RUN_WRITES}`),
      );
    } finally {
      channel.close();
    }
  });

  test('a view token may not dry-run writes: each is refused as its own call would be', async () => {
    const outcomes = await viewer.dryRunWrites([
      { verb: 'create', object: configMap('seen') },
      { verb: 'update', object: configMap('stored') },
    ]);
    assert.equal(outcomes.length, 2);
    for (const outcome of outcomes) assert.ok(outcome.error instanceof PermissionDeniedError);
  });
});
