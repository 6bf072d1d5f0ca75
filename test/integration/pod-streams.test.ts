/**
 * Pod streams end to end: a real control plane (etcd, NATS, the gRPC API in this process), a node
 * agent in this process running busybox pods with the embedded runtime (as root), and the CLI
 * binary (dist/bin/skiff.cjs) pointed at them with --server and --token. Logs (tail, since,
 * timestamps, previous after a restart, -f that follows and ends with the container), exec (exit
 * code, stdin, stdout, stderr; -t: a terminal of the container's own, resized), attach,
 * port-forward (through the CLI), authorisation, and what happens when a node has no tunnel, a
 * tunnel claims another node, a session is guessed, or the CLI disappears mid-session.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connectApi, type ApiClient, type PodStream } from '../../proto/client.js';
import {
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
} from '../../proto/errors.js';
import type { Pod } from '../../proto/gen/types.js';
import type { PodStreamFrame } from '../../proto/pod-streams.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { componentLogger } from '../../proto/support/logger.js';
import { removeAgentNode, startAgent, type RunningAgent } from '../../node-agent/agent/main.js';

const HOST_NETNS = `skiff-ps-${process.pid}`;
import { busyboxImage } from '../fixtures/images.js';
import { launchTestControlPlane, type TestControlPlane } from '../harness/control-plane.js';
import {
  openImageRuntimeWith,
  removeScratch,
  requireRootAndBusybox,
  scratchDir,
} from './runtime-containers-fixture.js';
import { inPty, shellLine } from './pty-driver.js';

const NODE = 'streams-node';
const FAST_BACKOFF = { initialMs: 300, maxMs: 1200, resetAfterMs: 600_000 };

let cluster: TestControlPlane;
let api: ApiClient;
let work: string;
let root: string;
let agent: RunningAgent | undefined;

async function eventually<T>(
  what: string,
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 30_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastError: unknown;
  while (Date.now() < until) {
    try {
      last = await read();
      if (ok(last)) return last;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(
    `${what}: not within ${timeoutMs} ms; last seen: ${JSON.stringify(last ?? String(lastError), null, 1)}`,
  );
}

function pod(name: string, spec: Partial<Pod['spec']> & { command?: string[] }, node = NODE): Pod {
  const { command, ...rest } = spec;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'main', image: 'busybox:1', ...(command ? { command } : {}) }],
      ...rest,
    },
  } as Pod;
}

/** Creates a pod and waits until it runs (all its containers). */
async function running(p: Pod): Promise<Pod> {
  await api.create(p);
  return eventually(
    `pod ${p.metadata.name} Running`,
    () => api.get('Pod', 'default', p.metadata.name!) as Promise<Pod>,
    (q) => q.status?.phase === 'Running' && (q.status.containerStatuses ?? []).every((c) => c.state?.running),
  );
}

/** A pod's log through the API, as text. */
async function logsOf(name: string, options: Record<string, unknown> = {}, client = api): Promise<string> {
  let text = '';
  for await (const chunk of client.logs({ namespace: 'default', name, ...options })) text += chunk.toString();
  return text;
}

interface Cli {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI binary against the in-process control plane. */
function skiff(args: string[], options: { input?: string; token?: string } = {}): Promise<Cli> {
  const child = skiffProcess(args, options.token);
  if (options.input !== undefined) child.stdin!.end(options.input);
  else child.stdin!.end();
  return finished(child);
}

function skiffProcess(args: string[], token = cluster.adminToken): ChildProcess {
  return spawn(
    process.execPath,
    [...skiffEntryArgv(), '--server', cluster.controlPlane.apiAddress, '--token', token, ...args],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, HOME: work } },
  );
}

function finished(child: ChildProcess): Promise<Cli> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** The frames of a pod stream, collected; resolves when it ends. */
async function framesOf(stream: PodStream): Promise<{ stdout: string; stderr: string; exitCode?: number }> {
  let stdout = '';
  let stderr = '';
  let exitCode: number | undefined;
  for await (const frame of stream) {
    stdout += frame.stdout?.toString() ?? '';
    stderr += frame.stderr?.toString() ?? '';
    if (frame.end?.exitCode !== undefined) exitCode = frame.end.exitCode;
  }
  return { stdout, stderr, ...(exitCode !== undefined ? { exitCode } : {}) };
}

/** Reads a stream's frames until its stdout matches. */
async function until(
  iterator: AsyncIterator<PodStreamFrame>,
  pattern: RegExp,
  seen = { text: '' },
): Promise<string> {
  while (!pattern.test(seen.text)) {
    const next = await iterator.next();
    if (next.done) assert.fail(`the stream ended before ${pattern}; got ${JSON.stringify(seen.text)}`);
    seen.text += next.value.stdout?.toString() ?? '';
  }
  return seen.text;
}

before(async () => {
  requireRootAndBusybox();
  cluster = await launchTestControlPlane('pod-streams', { nodeGraceMs: 60_000 });
  api = connectApi({ server: cluster.controlPlane.apiAddress, token: cluster.adminToken });
  work = await scratchDir('skiff-pod-streams-');
  root = join(work, 'root');
  await openImageRuntimeWith(root, join(work, 'images.tar'), [busyboxImage('busybox:1')]);
  // the node's pod network lives in a namespace of the test's own, never the machine's
  execFileSync('ip', ['netns', 'add', HOST_NETNS]);
  execFileSync('ip', ['-n', HOST_NETNS, 'link', 'set', 'lo', 'up']);
  agent = await startAgent({
    server: cluster.controlPlane.apiAddress,
    token: cluster.adminToken,
    nodeName: NODE,
    root,
    nodeIP: '127.0.0.1',
    hostNetns: `/run/netns/${HOST_NETNS}`,
    heartbeatMs: 500,
    backoff: FAST_BACKOFF,
    log: componentLogger('pod-streams-test'),
  });
  await eventually(
    'the agent’s tunnel',
    async () => cluster.controlPlane.podStreams.tunnels.nodes(),
    (nodes) => nodes.includes(NODE),
  );
});

after(async () => {
  await agent?.stop().catch(() => {});
  if (root) await removeAgentNode(root, { hostNetns: `/run/netns/${HOST_NETNS}` }).catch(() => []);
  try {
    execFileSync('ip', ['netns', 'del', HOST_NETNS]);
  } catch {
    // never made
  }
  api?.close();
  await cluster?.dispose();
  if (work) await removeScratch(work);
});

describe('logs', () => {
  test('the whole log, --tail, --timestamps, --since, --limit-bytes; through the API and the CLI', async () => {
    await running(
      pod('chatty', { command: ['sh', '-c', 'for i in 1 2 3 4 5; do echo "line $i"; done; sleep 1000'] }),
    );
    await eventually(
      'five lines',
      () => logsOf('chatty'),
      (t) => t.includes('line 5'),
    );
    assert.equal(await logsOf('chatty'), 'line 1\nline 2\nline 3\nline 4\nline 5\n');
    assert.equal(await logsOf('chatty', { tailLines: 2 }), 'line 4\nline 5\n');
    assert.equal(await logsOf('chatty', { tailLines: 0 }), '');
    assert.equal(await logsOf('chatty', { limitBytes: 9 }), 'line 1\nli');
    const stamped = await logsOf('chatty', { timestamps: true, tailLines: 1 });
    assert.match(stamped, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line 5\n$/);
    const written = Date.parse(stamped.slice(0, 23) + 'Z');
    assert.equal(await logsOf('chatty', { sinceTime: new Date(written + 2000).toISOString() }), '');
    assert.match(await logsOf('chatty', { sinceSeconds: 3600 }), /line 1\n[^]*line 5\n$/);

    const cli = await skiff(['logs', 'chatty', '--tail', '2']);
    assert.deepEqual(cli, { code: 0, stdout: 'line 4\nline 5\n', stderr: '' });
    const since = await skiff(['logs', 'pod/chatty', '--since', '1h', '--timestamps', '-c', 'main']);
    assert.equal(since.code, 0, since.stderr);
    assert.equal(since.stdout.split('\n').filter(Boolean).length, 5);
    const missing = await skiff(['logs', 'absent']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /pods? "absent" not found|absent.*not found/);
  });

  test('-f follows new lines and ends when the container ends', async () => {
    await api.create(
      pod('ticker', {
        restartPolicy: 'Never',
        command: ['sh', '-c', 'echo one; sleep 2; echo two; sleep 2; echo three'],
      }),
    );
    await eventually(
      'the container started',
      () => logsOf('ticker'),
      (t) => t.includes('one'),
    );
    const started = Date.now();
    const followed = await skiff(['logs', '-f', 'ticker']);
    assert.equal(followed.code, 0, followed.stderr);
    assert.equal(followed.stdout, 'one\ntwo\nthree\n');
    assert.ok(Date.now() - started >= 2000, 'it waited for the lines that came later');
  });

  test('-f across the log’s rotation: every line once, in order', async () => {
    // 12.5 MB of lines: the log rotates at 10 MiB while it is followed
    const lines = 250_000;
    await running(
      pod('rotating', {
        restartPolicy: 'Never',
        command: [
          'sh',
          '-c',
          // in bursts: a follower a whole file (10 MiB) behind loses what the second rotation deletes
          `sleep 2; i=0; while [ $i -lt ${lines} ]; do echo "line $i ........................................"; i=$((i+1)); [ $((i % 5000)) -eq 0 ] && sleep 0.1; done; true`,
        ],
      }),
    );
    let text = '';
    for await (const chunk of api.logs({ namespace: 'default', name: 'rotating', follow: true }))
      text += chunk.toString();
    const got = text.split('\n').filter(Boolean);
    assert.equal(got.length, lines, `${got.length} lines followed (the last: ${got.at(-1)})`);
    for (let i = 0; i < lines; i += 9973) assert.match(got[i]!, new RegExp(`^line ${i} `));
    assert.match(got.at(-1)!, new RegExp(`^line ${lines - 1} `));
  });

  test('--previous is the attempt before the last restart; a pod with an init container takes -c', async () => {
    // the first attempt fails, the second runs on: the count lives in an emptyDir, which outlives attempts
    await api.create({
      ...pod('restarts', {}),
      spec: {
        nodeName: NODE,
        restartPolicy: 'OnFailure',
        terminationGracePeriodSeconds: 1,
        volumes: [{ name: 'state', emptyDir: {} }],
        initContainers: [{ name: 'setup', image: 'busybox:1', command: ['sh', '-c', 'echo setting up'] }],
        containers: [
          {
            name: 'main',
            image: 'busybox:1',
            command: [
              'sh',
              '-c',
              'n=$(($(cat /state/n 2>/dev/null || echo 0) + 1)); echo $n > /state/n; echo "attempt $n"; [ $n -ge 2 ] && exec sleep 1000; exit 1',
            ],
            volumeMounts: [{ name: 'state', mountPath: '/state' }],
          },
          { name: 'sidecar', image: 'busybox:1', command: ['sleep', '1000'] },
        ],
      },
    } as Pod);
    await eventually(
      'restarted once, running',
      () => api.get('Pod', 'default', 'restarts') as Promise<Pod>,
      (p) =>
        p.status?.containerStatuses?.find((c) => c.name === 'main')?.restartCount === 1 &&
        p.status.containerStatuses.every((c) => c.state?.running),
    );
    assert.equal(await logsOf('restarts', { container: 'main' }), 'attempt 2\n');
    assert.equal(await logsOf('restarts', { container: 'main', previous: true }), 'attempt 1\n');
    assert.equal(await logsOf('restarts', { container: 'setup' }), 'setting up\n');
    await assert.rejects(
      logsOf('restarts', { container: 'sidecar', previous: true }),
      (err: unknown) =>
        err instanceof NotFoundError && /previous terminated container "sidecar"/.test(err.message),
    );
    const cli = await skiff(['logs', '-p', 'restarts', '-c', 'main']);
    assert.deepEqual(cli, { code: 0, stdout: 'attempt 1\n', stderr: '' });
    const unnamed = await skiff(['logs', 'restarts']);
    assert.equal(unnamed.code, 1);
    assert.match(
      unnamed.stderr,
      /a container name must be specified for pod "restarts" \(-c\), choose one of: \[main sidecar\] or one of the init containers: \[setup\]/,
    );
  });
});

describe('exec', () => {
  before(async () => {
    await running(pod('shell', { command: ['sleep', '100000'] }));
  });

  test('stdin, stdout and stderr through the CLI; the exit code is the CLI’s', async () => {
    const piped = await skiff(['exec', '-i', 'shell', '--', 'sh', '-c', 'cat; echo oops >&2; exit 3'], {
      input: 'hello\nworld\n',
    });
    assert.deepEqual(piped, { code: 3, stdout: 'hello\nworld\n', stderr: 'oops\n' });
    assert.deepEqual(await skiff(['exec', 'shell', '--', 'true']), { code: 0, stdout: '', stderr: '' });
    // without -i the process's stdin is empty
    assert.deepEqual(await skiff(['exec', 'shell', '--', 'cat']), { code: 0, stdout: '', stderr: '' });
    const notFound = await skiff(['exec', 'shell', '--', 'no-such-command']);
    assert.equal(notFound.code, 1);
    assert.match(notFound.stderr, /no-such-command/);
  });

  test('1 MB each way through stdin and stdout, in order', async () => {
    const stream = api.podStream('Exec', {
      namespace: 'default',
      name: 'shell',
      command: ['cat'],
      stdin: true,
    });
    const data = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = 33 + (i % 90);
    const result = framesOf(stream);
    assert.equal(await stream.sendStdin(data), true);
    await stream.closeStdin();
    const { stdout, exitCode } = await result;
    assert.equal(exitCode, 0);
    assert.equal(stdout.length, data.length);
    assert.ok(Buffer.from(stdout).equals(data));
  });

  test('-t: a terminal of the container’s own, of the size asked, resized on request', async () => {
    const stream = api.podStream('Exec', {
      namespace: 'default',
      name: 'shell',
      command: ['sh', '-c', 'tty; stty size; read x; stty size; exit 4'],
      stdin: true,
      tty: true,
      terminalSize: { rows: 33, cols: 111 },
    });
    const frames = stream[Symbol.asyncIterator]();
    const seen = { text: '' };
    await until(frames, /33 111\r\n/, seen);
    assert.match(seen.text, /^\/dev\/pts\/\d+\r\n33 111\r\n/);
    await stream.resize({ rows: 50, cols: 132 });
    await stream.sendStdin(Buffer.from('go\r'));
    await until(frames, /50 132\r\n/, seen);
    let exitCode: number | undefined;
    for (let next = await frames.next(); !next.done; next = await frames.next())
      if (next.value.end?.exitCode !== undefined) exitCode = next.value.end.exitCode;
    assert.equal(exitCode, 4);
  });

  test('a CLI that disappears mid-exec leaves no process in the container and no session behind', async () => {
    const child = skiffProcess(['exec', 'shell', '--', 'sh', '-c', 'echo started; exec sleep 4242']);
    child.stdin!.end();
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    await eventually(
      'the exec started',
      async () => out,
      (t) => t.includes('started'),
    );
    const sleeping = (): Promise<string> =>
      skiff(['exec', 'shell', '--', 'sh', '-c', 'ps -o args | grep "[s]leep 4242" || true']).then(
        (r) => r.stdout,
      );
    assert.match(await sleeping(), /sleep 4242/);
    child.kill('SIGKILL');
    await once(child, 'close');
    await eventually('the exec’d process is killed', sleeping, (t) => t === '');
    await eventually(
      'no session left',
      async () => ({
        agent: agent!.agent.podStreamSessions,
        waiting: cluster.controlPlane.podStreams.tunnels.waiting,
      }),
      (s) => s.agent === 0 && s.waiting === 0,
    );
  });
});

describe('attach', () => {
  test('to a container with stdin: its input from -i, its output from now on', async () => {
    await running({
      ...pod('repl', {}),
      spec: {
        nodeName: NODE,
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: 'main',
            image: 'busybox:1',
            stdin: true,
            command: ['sh', '-c', 'echo ready; while read line; do echo "got $line"; done; echo bye'],
          },
        ],
      },
    } as Pod);
    await eventually(
      'ready',
      () => logsOf('repl'),
      (t) => t.includes('ready'),
    );
    const stream = api.podStream('Attach', { namespace: 'default', name: 'repl', stdin: true });
    const frames = stream[Symbol.asyncIterator]();
    const seen = { text: '' };
    // the session opens before input goes: send until the answer comes (attach begins at "now")
    const sender = setInterval(() => void stream.sendStdin(Buffer.from('ping\n')), 200);
    try {
      await until(frames, /got ping\n/, seen);
    } finally {
      clearInterval(sender);
    }
    assert.doesNotMatch(seen.text, /ready/, 'only output from the attach on');
    stream.cancel();
    // a container without stdin: true refuses -i
    await running(pod('quiet', { command: ['sleep', '100000'] }));
    const refused = await skiff(['attach', '-i', 'quiet']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /was not made with stdin: true/);
  });
});

describe('attach -t', () => {
  test('to a container with stdin and tty: its terminal takes the attacher’s size, input is typed into it', async () => {
    await running({
      ...pod('console', {}),
      spec: {
        nodeName: NODE,
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'main', image: 'busybox:1', stdin: true, tty: true, command: ['sh'] }],
      },
    } as Pod);
    const stream = api.podStream('Attach', {
      namespace: 'default',
      name: 'console',
      stdin: true,
      tty: true,
      terminalSize: { rows: 21, cols: 77 },
    });
    const frames = stream[Symbol.asyncIterator]();
    const seen = { text: '' };
    const typer = setInterval(() => void stream.sendStdin(Buffer.from('stty size\r')), 300);
    try {
      await until(frames, /21 77\r\n/, seen);
    } finally {
      clearInterval(typer);
    }
    stream.cancel();
  });
});

describe('port-forward', () => {
  test('through the CLI: "Forwarding from", many connections, each to the pod’s port and back', async () => {
    // the fixture image links few applets; its busybox sh runs the others
    await running(pod('echo', { command: ['sh', '-c', 'exec nc -ll -p 8080 -e /bin/cat'] }));
    const child = skiffProcess(['port-forward', 'pod/echo', ':8080', '--address', '127.0.0.1']);
    try {
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      let err = '';
      child.stderr!.on('data', (d) => (err += d));
      const line = await eventually(
        'Forwarding from',
        async () => out,
        (t) => /Forwarding from 127\.0\.0\.1:\d+ -> 8080\n/.test(t),
        15_000,
      ).catch(() => assert.fail(`no Forwarding line; stderr: ${err}`));
      const localPort = Number(/127\.0\.0\.1:(\d+)/.exec(line)![1]);
      const exchange = async (message: string): Promise<string> => {
        // nc may not listen yet right after the pod started: a refused connection ends at once
        for (let attempt = 0; ; attempt++) {
          const socket: Socket = connect(localPort, '127.0.0.1');
          await once(socket, 'connect');
          let answer = '';
          socket.on('data', (d) => (answer += d));
          socket.end(message);
          await once(socket, 'close');
          if (answer !== '' || attempt > 20) return answer;
          await new Promise((r) => setTimeout(r, 200));
        }
      };
      assert.equal(await exchange('hello pod\n'), 'hello pod\n', `the CLI said: ${err}`);
      const many = await Promise.all(Array.from({ length: 8 }, (_, i) => exchange(`connection ${i}\n`)));
      many.forEach((answer, i) => assert.equal(answer, `connection ${i}\n`));
      assert.match(out, /Handling connection for \d+/);
    } finally {
      child.kill('SIGINT');
      await once(child, 'close');
    }
  });
});

describe('authorisation and the tunnels', () => {
  test('a view token reads logs and may not exec, attach or port-forward; no token, or a wrong one, is refused', async () => {
    const view = await api.createToken({ role: 'view', name: 'streams-viewer' });
    const edit = await api.createToken({ role: 'edit', name: 'streams-editor' });
    const viewer = connectApi({ server: cluster.controlPlane.apiAddress, token: view.token });
    const editor = connectApi({ server: cluster.controlPlane.apiAddress, token: edit.token });
    const stranger = connectApi({ server: cluster.controlPlane.apiAddress, token: 'not-a-token' });
    try {
      assert.match(await logsOf('chatty', { tailLines: 1 }, viewer), /line 5/);
      for (const kind of ['Exec', 'Attach', 'PortForward'] as const)
        await assert.rejects(
          framesOf(
            viewer.podStream(kind, { namespace: 'default', name: 'shell', command: ['true'], port: 80 }),
          ),
          (err: unknown) => err instanceof PermissionDeniedError && /role view/.test(err.message),
          kind,
        );
      const cli = await skiff(['exec', 'shell', '--', 'true'], { token: view.token });
      assert.equal(cli.code, 1);
      assert.match(cli.stderr, /exec pods\/exec: token "streams-viewer" has role view/);
      // an edit token may exec (Kubernetes' pods/exec needs create)
      const done = await framesOf(
        editor.podStream('Exec', { namespace: 'default', name: 'shell', command: ['echo', 'ok'] }),
      );
      assert.deepEqual(done, { stdout: 'ok\n', stderr: '', exitCode: 0 });
      await assert.rejects(logsOf('chatty', {}, stranger), UnauthenticatedError);
      await assert.rejects(
        framesOf(stranger.podStream('Exec', { namespace: 'default', name: 'shell', command: ['true'] })),
        UnauthenticatedError,
      );
      // an edit token cannot pose as a node
      const tunnel = editor.agentTunnel(NODE, 'test');
      await assert.rejects(
        (async () => {
          for await (const _ of tunnel) assert.fail('no session for an edit token');
        })(),
        (err: unknown) =>
          err instanceof PermissionDeniedError &&
          /an agent needs its node's identity or an admin token/.test(err.message),
      );
    } finally {
      viewer.close();
      editor.close();
      stranger.close();
    }
  });

  test('a pod on a node without a tunnel is UNAVAILABLE naming the node; a tunnel claiming another node never serves it', async () => {
    await api.create(pod('stranded', { command: ['sleep', '1000'] }, 'ghost-node'));
    await assert.rejects(
      logsOf('stranded'),
      (err: unknown) =>
        err instanceof UnavailableError && /node ghost-node has no agent connected/.test(err.message),
    );
    const cli = await skiff(['exec', 'stranded', '--', 'true']);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /node ghost-node has no agent connected/);
    // an agent that claims to be another node gets that node's sessions only
    const impostor = api.agentTunnel('impostor-node', 'test');
    const asked: unknown[] = [];
    const serving = (async () => {
      for await (const request of impostor) asked.push(request);
    })().catch(() => undefined);
    await impostor.ready;
    await assert.rejects(logsOf('stranded'), /node ghost-node has no agent connected/);
    assert.deepEqual(asked, [], 'the impostor was asked nothing');
    // (a node identity, system:node:NAME, claiming another node: controlplane/api/auth.test.ts)
    impostor.close();
    await serving;
  });

  test('a session stream with a guessed id, or a known id and a wrong secret, is refused', async () => {
    const guessed = api.sessionStream('0'.repeat(32), 'guess');
    await assert.rejects(
      (async () => {
        for await (const _ of guessed) assert.fail('no frames');
      })(),
      (err: unknown) => (err as { code?: number }).code === 5,
    );
    // a real session's id (seen by a tunnel of the node), with a wrong secret
    const eavesdropper = api.agentTunnel('eaves-node', 'test');
    await eavesdropper.ready;
    await api.create(pod('eaves', { command: ['sleep', '1000'] }, 'eaves-node'));
    const stream = api.podStream('Exec', { namespace: 'default', name: 'eaves', command: ['true'] });
    const result = framesOf(stream).catch((err: unknown) => err);
    const event = (await eavesdropper[Symbol.asyncIterator]().next()).value!;
    assert.ok('open' in event);
    const request = event.open;
    const wrong = api.sessionStream(request.id, 'not-the-secret');
    await assert.rejects(
      (async () => {
        for await (const _ of wrong) assert.fail('no frames');
      })(),
      (err: unknown) => (err as { code?: number }).code === 7,
    );
    stream.cancel();
    await result;
    eavesdropper.close();
  });
});

describe('hostile and careless callers', () => {
  const ps = (): Promise<string> => skiff(['exec', 'shell', '--', 'ps', '-o', 'args']).then((r) => r.stdout);

  test('a reader that stops: the process’s output stops, nothing piles up; leaving kills the process', async () => {
    const stream = api.podStream('Exec', {
      namespace: 'default',
      name: 'shell',
      command: ['sh', '-c', 'exec cat /dev/zero'],
    });
    const frames = stream[Symbol.asyncIterator]();
    await frames.next();
    const before = process.memoryUsage().rss;
    await new Promise((r) => setTimeout(r, 2000));
    // the control plane, the agent and this client share this process: all they hold is here
    const grown = process.memoryUsage().rss - before;
    assert.ok(grown < 64 * 1024 * 1024, `${grown} bytes more while nobody read`);
    let read = 0;
    for (let i = 0; i < 100; i++) read += (await frames.next()).value?.stdout?.length ?? 0;
    assert.ok(read > 0);
    assert.match(await ps(), /cat \/dev\/zero/);
    stream.cancel();
    await eventually('the cat is gone', ps, (t) => !t.includes('cat /dev/zero'));
  });

  test('a writer faster than the process reads is held back: what is accepted stays bounded', async () => {
    const stream = api.podStream('Exec', {
      namespace: 'default',
      name: 'shell',
      command: ['sleep', '4343'],
      stdin: true,
    });
    const chunk = Buffer.alloc(1024 * 1024, 'w');
    let accepted = 0;
    const writer = (async () => {
      while (await stream.sendStdin(chunk)) accepted += chunk.length;
    })();
    await new Promise((r) => setTimeout(r, 2500));
    const stuck = accepted;
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(accepted, stuck, 'no more taken while the process reads nothing');
    assert.ok(accepted < 32 * 1024 * 1024, `${accepted} bytes taken for a process that reads nothing`);
    stream.cancel();
    await writer;
    await eventually('the sleep is gone', ps, (t) => !t.includes('sleep 4343'));
  });

  test('a frame above 128 KiB fails its call; the control plane goes on serving', async () => {
    const { WireChannel } = await import('../../proto/grpc-wire-client.js');
    const { encodeFrame } = await import('../../proto/pod-streams.js');
    const channel = new WireChannel(cluster.controlPlane.apiAddress, {
      maxReceiveBytes: 1024 * 1024,
      keepaliveMs: 30_000,
      keepaliveTimeoutMs: 10_000,
    });
    try {
      const call = channel.duplex('/skiff.v1.Api/Exec', {
        metadata: { authorization: `Bearer ${cluster.adminToken}` },
      });
      await call.send(
        encodeFrame({ open: { namespace: 'default', name: 'shell', command: ['cat'], stdin: true } }),
      );
      await call.send(encodeFrame({ stdin: Buffer.alloc(1024 * 1024) }));
      const ended = await call.ended;
      assert.ok(ended !== undefined && ended.code !== 0, 'the call failed');
    } finally {
      channel.close();
    }
    const after = await framesOf(
      api.podStream('Exec', { namespace: 'default', name: 'shell', command: ['echo', 'still'] }),
    );
    assert.equal(after.stdout, 'still\n');
  });

  test('a session the control plane did not give the agent runs nothing', async () => {
    const { PodStreamServer } = await import('../../node-agent/agent/pod-streams.js');
    const pod = (await api.get('Pod', 'default', 'shell')) as Pod;
    const server = new PodStreamServer({
      api,
      runtime: agent!.runtime.runtime,
      nodeName: NODE,
      version: 'test',
      podOf: () => undefined,
      log: componentLogger('pod-streams-test'),
    });
    // a forged request (an id nobody asked for), as if a tunnel had been fooled
    await server.serve({
      id: 'f'.repeat(32),
      secret: 'forged',
      kind: 'exec',
      namespace: 'default',
      pod: 'shell',
      podUid: pod.metadata.uid!,
      container: 'main',
      stream: { namespace: 'default', name: 'shell', command: ['touch', '/tmp/forged'] },
    });
    const check = await skiff(['exec', 'shell', '--', 'ls', '/tmp/forged']);
    assert.notEqual(check.code, 0, 'the forged exec never ran');
  });
});

describe('the CLI at a real terminal', () => {
  before(async () => {
    await running(pod('term', { command: ['sleep', '100000'] }));
  });
  const line = (...args: string[]): string =>
    shellLine([
      process.execPath,
      ...skiffEntryArgv(),
      '--server',
      cluster.controlPlane.apiAddress,
      '--token',
      cluster.adminToken,
      ...args,
    ]);
  const ps = (): Promise<string> => skiff(['exec', 'term', '--', 'ps', '-o', 'args']).then((r) => r.stdout);

  test('exec -it: a shell in the pod, sized as the window and resized with it; Ctrl-C goes to the pod; the exit code comes back', async () => {
    const output = await inPty([
      { until: '\\$ $', timeout: 5 },
      {
        resize: [30, 100],
        write: `${line('exec', '-i', '-t', 'term', '--', 'sh')}; echo "__EXEC__ $?"\n`,
        until: '/ # ',
        timeout: 30,
      },
      { write: 'tty; stty size\r', until: '30 100', timeout: 10 },
      // the window resized: SIGWINCH to the CLI, a resize frame to the pod's terminal
      { resize: [44, 120], timeout: 1 },
      { write: 'stty size\r', until: '44 120', timeout: 10 },
      // Ctrl-C is a byte for the pod's terminal: it interrupts the sleep there, the shell goes on
      { write: 'sleep 30\r', timeout: 1 },
      { write: '\x03', until: '/ # [\\s\\S]*/ # ', timeout: 10 },
      { write: 'exit 7\r', until: '__EXEC__ \\d+', timeout: 15 },
    ]);
    assert.match(output, /\/dev\/pts\/\d+/);
    assert.match(output, /__EXEC__ 7/, output);
  });

  test('exec without -t: Ctrl-C ends it with 130 and the process in the pod is gone', async () => {
    const output = await inPty([
      { until: '\\$ $', timeout: 5 },
      {
        write: `${line('exec', 'term', '--', 'sh', '-c', 'echo started; exec sleep 4545')}; echo "__EXEC__ $?"\n`,
        until: 'started\\r\\n',
        timeout: 30,
      },
      { write: '\x03', until: '__EXEC__ \\d+', timeout: 15 },
    ]);
    assert.match(output, /__EXEC__ 130/, output);
    await eventually('the sleep is gone', ps, (t) => !t.includes('sleep 4545'));
  });
});
