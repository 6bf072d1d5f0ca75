import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { FailedPreconditionError, type SkiffError } from '../../proto/errors.js';
import { encodeFrame, endOfError } from '../../proto/pod-streams.js';
import { splice, type FrameCall } from './splice.js';

/** A call as grpc-js gives it, far enough for the splice: it takes `capacity` frames before write says false. */
class FakeCall extends EventEmitter implements FrameCall {
  written: Buffer[] = [];
  buffered = 0;
  paused = false;
  ended = false;
  constructor(private readonly capacity = 4) {
    super();
  }
  write(frame: Buffer): boolean {
    this.written.push(frame);
    this.buffered++;
    return this.buffered < this.capacity;
  }
  end(): void {
    this.ended = true;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  /** The reader took everything: 'drain'. */
  drain(): void {
    this.buffered = 0;
    this.emit('drain');
  }
  /** A frame arrives, unless the reader paused (then the sender is held by flow control). */
  arrive(frame: Buffer): boolean {
    if (this.paused) return false;
    this.emit('data', frame);
    return true;
  }
}

const out = (text: string): Buffer => encodeFrame({ stdout: Buffer.from(text) });

function sides(user: FakeCall, agent: FakeCall, readable = true) {
  const failed: SkiffError[] = [];
  const cancelled: string[] = [];
  return {
    failed,
    cancelled,
    sides: {
      user,
      agent,
      readable,
      node: 'n1',
      failUser: (error: SkiffError) => void failed.push(error),
      cancelAgent: (reason: string) => void cancelled.push(reason),
    },
  };
}

test('a slow user stops the agent’s frames after what the user’s call buffers; they flow again on drain', async () => {
  const user = new FakeCall(4);
  const agent = new FakeCall();
  const { sides: s } = sides(user, agent);
  const done = splice(s);
  let delivered = 0;
  for (let i = 0; i < 100 && agent.arrive(out(`line ${i}\n`)); i++) delivered++;
  assert.equal(delivered, 4, 'the agent is paused once the user’s call holds 4 frames');
  assert.equal(user.written.length, 4);
  user.drain();
  assert.equal(agent.paused, false);
  for (let i = 0; i < 100 && agent.arrive(out('more\n')); i++) delivered++;
  assert.equal(delivered, 8);
  user.drain();
  agent.arrive(encodeFrame({ end: { exitCode: 3 } }));
  const end = await done;
  assert.equal(end.by, 'agent');
  assert.equal(user.ended, true, 'the user’s call ended with OK');
  assert.equal(agent.ended, true);
  // the end frame is passed on: the client reads the exit code from it
  assert.deepEqual(user.written.at(-1), encodeFrame({ end: { exitCode: 3 } }));
});

test('a slow agent stops the user’s input the same way', async () => {
  const user = new FakeCall();
  const agent = new FakeCall(2);
  const { sides: s, cancelled } = sides(user, agent);
  const done = splice(s);
  let sent = 0;
  for (let i = 0; i < 50 && user.arrive(encodeFrame({ stdin: Buffer.alloc(1000) })); i++) sent++;
  assert.equal(sent, 2);
  user.emit('cancelled');
  assert.equal((await done).by, 'user');
  assert.deepEqual(cancelled, ['the client went away']);
});

test('an end frame with an error ends the user’s call with it; an agent that vanishes is UNAVAILABLE naming its node', async () => {
  {
    const user = new FakeCall();
    const agent = new FakeCall();
    const { sides: s, failed } = sides(user, agent);
    const done = splice(s);
    agent.arrive(
      encodeFrame({
        end: endOfError(new FailedPreconditionError('exec pod default/web: container main is not running')),
      }),
    );
    await done;
    assert.equal(failed.length, 1);
    assert.ok(failed[0] instanceof FailedPreconditionError);
    assert.equal(failed[0]!.message, 'exec pod default/web: container main is not running');
    assert.equal(user.written.length, 0, 'an error’s end frame is not passed on');
  }
  {
    const user = new FakeCall();
    const agent = new FakeCall();
    const { sides: s, failed } = sides(user, agent);
    const done = splice(s);
    agent.emit('cancelled');
    await done;
    assert.match(failed[0]!.message, /the agent of node n1 went away during the session/);
  }
});
