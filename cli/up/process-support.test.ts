import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { FailedPreconditionError, InvalidArgumentError } from '../../proto/errors.js';
import {
  choosePorts,
  findBinary,
  isAlive,
  listensOn,
  ownReadiness,
  retryLostPortRace,
  spawnManagedServer,
  stopProcess,
} from './process-support.js';

/**
 * Starts `sleep 60` whose child `sleep 30` is never reaped (the shell execs into a sleep that
 * never waits), so once that child exits it stays a zombie until the test kills the parent.
 * Returns the parent and the child pid.
 *
 * It returns only once both have exec'd `sleep`. The shell prints the child's pid before its own
 * `exec sleep 60`; until that exec the parent is still bash, which reaps any child that exits, so
 * a child stopped in that window is gone (ENOENT on /proc/PID/stat) instead of a zombie.
 */
async function parentOfUnreapedChild(): Promise<{ parent: ChildProcess; childPid: number }> {
  const parent = spawn('bash', ['-c', 'sleep 30 & echo $!; exec sleep 60'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
    const childPid = Number(line.toString().trim());
    const deadline = Date.now() + 5000;
    while (commandOf(parent.pid!) !== 'sleep' || commandOf(childPid) !== 'sleep') {
      assert.ok(Date.now() < deadline, `pid ${parent.pid} and its child ${childPid} did not exec sleep`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return { parent, childPid };
  } catch (err) {
    await killAndReap(parent);
    throw err;
  }
}

const commandOf = (pid: number): string => readFileSync(`/proc/${pid}/comm`, 'utf8').trimEnd();

async function killAndReap(parent: ChildProcess): Promise<void> {
  if (parent.exitCode !== null || parent.signalCode !== null) return;
  const exited = once(parent, 'exit');
  parent.kill('SIGKILL');
  await exited;
}

const stateOf = (pid: number): string => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0]!;
};

function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
}

function listen(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve(server));
  });
}

describe('process support', () => {
  test('a missing binary names the apt package to install', () => {
    assert.throws(
      () => findBinary('skiff-no-such-server', 'skiff-no-such-package'),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        err.message.includes('apt-get install -y skiff-no-such-package'),
    );
    assert.match(findBinary('etcd', 'etcd-server'), /\/etcd$/);
    assert.equal(findBinary('nats-server', 'nats-server'), '/usr/sbin/nats-server');
  });

  test('ports: distinct free ones, a taken preferred one is replaced, a taken exact one is an error', async () => {
    const blocker = await listen();
    try {
      const address = blocker.address();
      assert.ok(address !== null && typeof address === 'object');
      const taken = address.port;
      const ports = await choosePorts('127.0.0.1', {
        a: {},
        b: {},
        c: { preferred: taken },
      });
      assert.equal(new Set(Object.values(ports)).size, 3);
      assert.notEqual(ports.c, taken);
      await assert.rejects(
        choosePorts('127.0.0.1', { 'etcd client port': { exact: taken } }),
        (err: unknown) =>
          err instanceof FailedPreconditionError &&
          err.message.startsWith(`choose etcd client port: 127.0.0.1:${taken} is not available`),
      );
      await assert.rejects(choosePorts('127.0.0.1', { port: { exact: 70000 } }), InvalidArgumentError);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test('a start that lost its port to another process is tried again; other failures are not', async () => {
    let calls = 0;
    const result = await retryLostPortRace(async () => {
      calls++;
      if (calls < 3) throw new Error('listen tcp 127.0.0.1:4222: bind: address already in use');
      return 'started';
    });
    assert.equal(result, 'started');
    assert.equal(calls, 3);
    calls = 0;
    await assert.rejects(
      retryLostPortRace(async () => {
        calls++;
        throw new Error('invalid duration');
      }),
      /invalid duration/,
    );
    assert.equal(calls, 1);
  });

  test('listensOn tells the process that listens on a port from one that merely answers on it', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30_000)'], { stdio: 'ignore' });
    try {
      await once(other, 'spawn');
      assert.equal(listensOn(process.pid, port), true, 'this process listens');
      assert.equal(listensOn(other.pid!, port), false, 'the other does not');
      // a probe that succeeds is not enough: the process must hold the port itself
      assert.equal(await ownReadiness(other.pid!, [port], async () => true)(), false);
      assert.equal(await ownReadiness(process.pid, [port], async () => true)(), true);
      assert.equal(await ownReadiness(process.pid, [port], async () => false)(), false);
      await new Promise((resolve) => server.close(resolve));
      assert.equal(listensOn(process.pid, port), false, 'closed');
      assert.equal(listensOn(999_999_999, port), false, 'no such process');
    } finally {
      other.kill();
      if (server.listening) server.close();
    }
  });

  test('a server in another network namespace takes exact ports only, refused before anything runs', async () => {
    const started = spawnManagedServer({
      command: 'sh',
      aptPackage: 'dash',
      host: '10.0.0.1',
      ports: { 'api port': { exact: 7440 }, 'http port': { preferred: 7441 } },
      dataDir: '/nonexistent/never-made',
      args: () => ['-c', 'exit 1'],
      describe: () => 'a server',
      ready: async () => true,
      readyTimeoutMs: 1000,
      output: {},
      detached: false,
      netns: '/run/netns/nowhere',
    });
    await assert.rejects(
      started,
      (err: Error) =>
        err instanceof InvalidArgumentError && /http port: .*needs an exact port/.test(err.message),
    );
  });

  test('isAlive: a running process is alive; an exited one that is not reaped yet (a zombie) is not', async () => {
    const { parent, childPid } = await parentOfUnreapedChild();
    try {
      assert.equal(isAlive(parent.pid!), true);
      assert.equal(isAlive(childPid), true);
      process.kill(childPid, 'SIGKILL');
      const deadline = Date.now() + 5000;
      while (stateOf(childPid) !== 'Z') {
        assert.ok(Date.now() < deadline, `pid ${childPid} did not become a zombie`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      process.kill(childPid, 0); // kill(0) still succeeds on a zombie: the case isAlive exists for
      assert.equal(isAlive(childPid), false);
    } finally {
      await killAndReap(parent);
    }
    assert.equal(isAlive(parent.pid!), false, 'reaped and gone');
  });

  test('stopProcess returns as soon as a process it did not spawn has exited, reaped or not', async () => {
    const { parent, childPid } = await parentOfUnreapedChild();
    try {
      const began = Date.now();
      await stopProcess(childPid, { graceMs: 5000 });
      const took = Date.now() - began;
      assert.ok(took < 1000, `took ${took} ms; a zombie was taken for alive`);
      assert.equal(stateOf(childPid), 'Z', 'exited, and its parent has not reaped it');
    } finally {
      await killAndReap(parent);
    }
  });

  test('stopProcess of a spawned process leaves no timer running (a CLI exits at once after it)', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = once(child, 'exit');
    try {
      const timersBefore = activeTimers();
      await stopProcess(child.pid!, { graceMs: 5000, exited });
      assert.equal(activeTimers(), timersBefore, 'the grace-period timer is still pending');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
