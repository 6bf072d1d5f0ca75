import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Metadata, status } from '@grpc/grpc-js';
import {
  AlreadyExistsError,
  ConflictError,
  DeadlineExceededError,
  FailedPreconditionError,
  GoneError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  type SkiffError,
} from './errors.js';
import { GRPC_CODE, INTERNAL_MESSAGE, fromGrpcError, fromGrpcStatus, toGrpcStatus } from './grpc-status.js';
import { CallMetadata, GrpcCallError } from './grpc-wire-client.js';

/** What the client reads of the status a server sends for `err` (trailers as HTTP/2 headers). */
function overTheWire(err: unknown): GrpcCallError {
  const st = toGrpcStatus(err);
  return new GrpcCallError(st.code, st.details, CallMetadata.fromHeaders(st.trailers));
}

describe('grpc-status', () => {
  test("the status codes are gRPC's (grpc-js's numbers, which the server sends)", () => {
    for (const [name, code] of Object.entries(GRPC_CODE))
      assert.equal(code, status[name as keyof typeof status], name);
  });

  const cases: Array<[SkiffError, status]> = [
    [new NotFoundError('get pod default/x: not found'), status.NOT_FOUND],
    [new AlreadyExistsError('create pod default/x: already exists'), status.ALREADY_EXISTS],
    [new ConflictError('update pod default/x: stale resourceVersion'), status.ABORTED],
    [new FailedPreconditionError('create pod: namespace is terminating'), status.FAILED_PRECONDITION],
    [new UnauthenticatedError('no token'), status.UNAUTHENTICATED],
    [new PermissionDeniedError('view role cannot write'), status.PERMISSION_DENIED],
    [new DeadlineExceededError('too slow'), status.DEADLINE_EXCEEDED],
    [new ResourceExhaustedError('too big'), status.RESOURCE_EXHAUSTED],
    [new GoneError('watch: compacted; re-list'), status.OUT_OF_RANGE],
  ];
  for (const [err, code] of cases) {
    test(`${err.name} round-trips as ${status[code]}`, () => {
      const st = toGrpcStatus(err);
      assert.equal(st.code, code);
      assert.equal(st.internal, false);
      const back = fromGrpcError(overTheWire(err), '127.0.0.1:1');
      assert.equal(back.constructor, err.constructor);
      if (code !== status.DEADLINE_EXCEEDED) assert.equal(back.message, err.message);
    });
  }

  test('InvalidArgumentError keeps its field path', () => {
    const back = fromGrpcError(
      overTheWire(new InvalidArgumentError('create pod: bad image', 'spec.containers[0].image')),
      'x:1',
    );
    assert.ok(back instanceof InvalidArgumentError);
    assert.equal(back.field, 'spec.containers[0].image');
    assert.equal(back.message, 'create pod: bad image');
  });

  test('UnavailableError keeps its endpoint', () => {
    const back = fromGrpcError(
      overTheWire(new UnavailableError('etcd down', 'http://127.0.0.1:2379')),
      'x:1',
    );
    assert.ok(back instanceof UnavailableError);
    assert.equal(back.endpoint, 'http://127.0.0.1:2379');
  });

  test('a transport UNAVAILABLE names the server', () => {
    const transport = Object.assign(new Error('14 UNAVAILABLE: No connection established'), {
      code: status.UNAVAILABLE,
      details: 'No connection established',
      metadata: new Metadata(),
    });
    const back = fromGrpcError(transport, '127.0.0.1:7440');
    assert.ok(back instanceof UnavailableError);
    assert.equal(back.endpoint, '127.0.0.1:7440');
    assert.match(back.message, /127\.0\.0\.1:7440/);
  });

  test('a status carried in an answer (api.proto Status) reads back as the error it was made of', () => {
    const inAnswer = (err: unknown): SkiffError => {
      const st = toGrpcStatus(err);
      return fromGrpcStatus({ code: st.code, message: st.details, details: st.trailers }, 'x:1');
    };
    for (const [err, code] of cases) {
      const back = inAnswer(err);
      assert.equal(back.constructor, err.constructor, err.name);
      if (code !== status.DEADLINE_EXCEEDED) assert.equal(back.message, err.message);
    }
    const invalid = inAnswer(new InvalidArgumentError('create pod: bad image', 'spec.containers[0].image'));
    assert.ok(invalid instanceof InvalidArgumentError);
    assert.equal(invalid.field, 'spec.containers[0].image');
    const unavailable = inAnswer(new UnavailableError('etcd down', 'http://127.0.0.1:2379'));
    assert.ok(unavailable instanceof UnavailableError);
    assert.equal(unavailable.endpoint, 'http://127.0.0.1:2379');
    assert.ok(inAnswer(new TypeError('x')) instanceof InternalError);
    // Without skiff's trailers, the code alone decides.
    assert.ok(
      fromGrpcStatus({ code: status.NOT_FOUND, message: 'm', details: {} }, 'x:1') instanceof NotFoundError,
    );
  });

  test('a raw internal error never reaches the wire', () => {
    const st = toGrpcStatus(new TypeError('secret path /etc/shadow in stack'));
    assert.equal(st.code, status.INTERNAL);
    assert.equal(st.internal, true);
    assert.equal(st.details, INTERNAL_MESSAGE);
    assert.ok(fromGrpcError(overTheWire(new TypeError('x')), 'x:1') instanceof InternalError);
  });
});
