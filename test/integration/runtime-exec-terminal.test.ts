/**
 * `skiff runtime exec` never hands the caller's terminal or files to the container: a probe in
 * the container tries TIOCSTI on everything it can reach while the CLI runs in a real pty (bash
 * driven by python3's pty module), and must inject nothing; stdin, stdout, stderr, the exit code,
 * Ctrl-D and Ctrl-C go through the CLI's relay.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import {
  LinuxContainerRuntime,
  type CreateContainerOptions,
} from '../../node-agent/runtime/containers/container-runtime.js';
import { relayExec } from '../../node-agent/runtime/sys/helper.js';
import { InvalidArgumentError } from '../../proto/errors.js';
import { makeHostileRootfs, requireHostileTools } from './hostile-probe.js';
import { logText, onRootfs, withScratchRuntime } from './runtime-containers-fixture.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { inPty, shellLine } from './pty-driver.js';

const cli = skiffEntryArgv();

/** The `skiff runtime` command line on this root, as typed into a shell. */
function cliLine(...args: string[]): string {
  return shellLine([process.execPath, ...process.execArgv, ...cli, 'runtime', '--root', root, ...args]);
}

function skiff(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, ...cli, 'runtime', '--root', root, ...args], {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    if (input !== undefined) child.stdin!.end(input);
  });
}

let work: string;
let rootfs: string;
let root: string;
let rt: LinuxContainerRuntime;

withScratchRuntime('skiff-exec-tty-', async (dir) => {
  requireHostileTools([
    ['python3', 'python3'],
    ['bash', 'bash'],
  ]);
  work = dir;
  rootfs = await makeHostileRootfs(join(work, 'rootfs'), work);
  root = join(work, 'root');
  rt = await LinuxContainerRuntime.open({ root });
  return rt;
});

function opts(argv: string[], extra: Partial<CreateContainerOptions> = {}): CreateContainerOptions {
  return onRootfs(rootfs, argv, extra);
}

describe('exec never hands the caller its terminal', () => {
  test('under a real terminal: no terminal inside, TIOCSTI injects nothing, the exit code comes back', async () => {
    const c = await rt.create(opts(['sleep', '1000']));
    try {
      await rt.start(c.id);
      const marker = join(work, 'INJECTED');
      const output = await inPty([
        { until: '\\$ $', timeout: 5 },
        {
          write: `${cliLine('exec', c.id, '/probe', 'tty', marker)}; echo "__DONE__ $?"\n`,
          until: '__DONE__ \\d+',
          timeout: 30,
        },
        // had anything been injected, the shell would be running it now
        { timeout: 1 },
      ]);
      assert.equal(existsSync(marker), false, `nothing was injected:\n${output}`);
      assert.match(output, /__DONE__ 7/);
      for (const fd of [0, 1, 2]) {
        assert.match(output, new RegExp(`fd ${fd}: not a terminal`));
        assert.match(output, new RegExp(`TIOCSTI fd ${fd}: Inappropriate ioctl for device`));
      }
      assert.match(output, /\/dev\/tty: No such device or address/);
      assert.match(output, /session leader: yes/);
      assert.doesNotMatch(output, /injected/);
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('-i relays a terminal: typed lines reach the process, Ctrl-D ends its input, Ctrl-C interrupts it', async () => {
    const c = await rt.create(opts(['sleep', '1000']));
    try {
      await rt.start(c.id);
      const output = await inPty([
        { until: '\\$ $', timeout: 5 },
        { write: `${cliLine('exec', '-i', c.id, 'cat')}; echo "__DONE__ $?"\n`, timeout: 1.5 },
        {
          write: 'hello from the terminal\n',
          until: 'terminal\\r\\n(.*\\r\\n)*hello from the terminal\\r\\n',
          timeout: 10,
        },
        { write: '\x04', until: '__DONE__ \\d+', timeout: 10 },
        {
          write: `${cliLine('exec', '-i', c.id, 'sh', '-c', 'echo started; exec sleep 30')}; echo "__INT__ $?"\n`,
          until: 'started\\r\\n',
          timeout: 10,
        },
        { write: '\x03', until: '__INT__ \\d+', timeout: 10 },
      ]);
      assert.match(output, /__DONE__ 0/);
      assert.match(output, /__INT__ 130/, output);
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('stdin, stdout and stderr through pipes; the exit code is the process’s', async () => {
    const c = await rt.create(opts(['sleep', '1000']));
    try {
      await rt.start(c.id);
      const cat = await skiff(['exec', '-i', c.id, 'cat'], 'hi\n');
      assert.deepEqual(cat, { code: 0, stdout: 'hi\n', stderr: '' });
      const both = await skiff(['exec', c.id, 'sh', '-c', 'echo out; echo err >&2; exit 3']);
      assert.deepEqual(both, { code: 3, stdout: 'out\n', stderr: 'err\n' });
      // without -i the process's stdin is empty
      assert.deepEqual(await skiff(['exec', c.id, 'cat']), { code: 0, stdout: '', stderr: '' });
      // a process left behind holding the output does not hold the exec
      const started = Date.now();
      const bg = await skiff(['exec', c.id, 'sh', '-c', 'sleep 20 & echo left']);
      assert.equal(bg.code, 0);
      assert.equal(bg.stdout, 'left\n');
      assert.ok(Date.now() - started < 10_000, `returned after ${Date.now() - started} ms`);
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('the output of a command that exits before the caller reads it is not lost', async () => {
    // Node drops a child's unread output when it exits; about one exec in five lost its output
    const c = await rt.create(opts(['sleep', '1000']));
    try {
      await rt.start(c.id);
      for (let i = 0; i < 25; i++) {
        const handle = await rt.exec(c.id, { argv: ['echo', `line ${i}`], stdio: 'pipe' });
        await handle.exited;
        await new Promise((resolve) => setTimeout(resolve, 20));
        const stdout = new PassThrough();
        let text = '';
        stdout.on('data', (d) => (text += d));
        assert.equal(await relayExec(handle, { stdout, stderr: new PassThrough() }), 0);
        assert.equal(text, `line ${i}\n`, `exec ${i}`);
      }
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('the runtime refuses a terminal as an exec stdio; relayExec copies pipes both ways', async () => {
    const c = await rt.create(opts(['sleep', '1000']));
    const ptmx = openSync('/dev/ptmx', 'r+');
    try {
      await rt.start(c.id);
      await assert.rejects(
        rt.exec(c.id, { argv: ['true'], stdio: [ptmx, 'pipe', 'pipe'] }),
        (err: unknown) => err instanceof InvalidArgumentError && /stdio 0 is a terminal/.test(err.message),
      );
      const handle = await rt.exec(c.id, { argv: ['sh', '-c', 'tr a-z A-Z; exit 4'], stdio: 'pipe' });
      const stdin = new PassThrough();
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let text = '';
      stdout.on('data', (d) => (text += d));
      stdin.end('piped\n');
      assert.equal(await relayExec(handle, { stdin, stdout, stderr }), 4);
      assert.equal(text, 'PIPED\n');
    } finally {
      closeSync(ptmx);
      await rt.remove(c.id, { force: true });
    }
  });
});

/** Collects a stream's text; `until` resolves once it matches. */
function collector(): { stream: PassThrough; text: () => string; until: (pattern: RegExp) => Promise<void> } {
  const stream = new PassThrough();
  let text = '';
  const waiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
  stream.on('data', (d: Buffer) => {
    text += d.toString();
    for (const w of waiters.filter((w) => w.pattern.test(text))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  return {
    stream,
    text: () => text,
    until: (pattern) =>
      pattern.test(text)
        ? Promise.resolve()
        : Promise.race([
            new Promise<void>((resolve) => waiters.push({ pattern, resolve })),
            new Promise<void>((_, reject) =>
              setTimeout(
                () => reject(new Error(`never saw ${pattern}; got ${JSON.stringify(text)}`)),
                15_000,
              ),
            ),
          ]),
  };
}

describe('a terminal of the container’s own (-t)', () => {
  test('exec -t: the process’s stdio is a new terminal of the container’s devpts, sized as asked, resized on request', async () => {
    const c = await rt.create(opts(['sleep', '1000']));
    try {
      await rt.start(c.id);
      const handle = await rt.exec(c.id, {
        argv: [
          'sh',
          '-c',
          'tty; stty size; for fd in 0 1 2; do readlink /proc/$$/fd/$fd; done; read line; stty size; exit 5',
        ],
        stdio: 'pipe',
        terminal: { rows: 30, cols: 100 },
      });
      const out = collector();
      const stdin = new PassThrough();
      const code = relayExec(handle, { stdin, stdout: out.stream, stderr: new PassThrough() });
      await out.until(/30 100\r\n(\/dev\/pts\/0\r\n){3}/);
      handle.resize(41, 123);
      stdin.write('go\r');
      assert.equal(await code, 5);
      const text = out.text();
      // the container's own devpts: its first terminal; stdin, stdout and stderr all it
      assert.match(text, /^\/dev\/pts\/0\r\n30 100\r\n(\/dev\/pts\/0\r\n){3}/);
      assert.match(text, /go\r\n41 123\r\n$/, 'typed input echoes, and the new size shows');
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('exec -i -t under a real terminal: TIOCSTI reaches only the container’s terminal, nothing of the caller’s', async () => {
    const c = await rt.create(opts(['sleep', '1000']));
    try {
      await rt.start(c.id);
      const marker = join(work, 'INJECTED-T');
      const output = await inPty([
        { until: '\\$ $', timeout: 5 },
        {
          write: `${cliLine('exec', '-i', '-t', c.id, '/probe', 'tty', marker)}; echo "__DONE__ $?"\n`,
          until: '__DONE__ \\d+',
          timeout: 30,
        },
        { timeout: 1 },
      ]);
      assert.equal(existsSync(marker), false, `nothing was injected into the caller's shell:\n${output}`);
      assert.match(output, /__DONE__ 7/);
      assert.match(output, /fd 0: a terminal/, 'the process has a terminal: the container’s');
      assert.match(output, /session leader: yes/);
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('run -i -t: an interactive shell in a new container, typed into from a real terminal; its exit code is the CLI’s', async () => {
    const output = await inPty([
      { until: '\\$ $', timeout: 5 },
      {
        write: `${cliLine('run', '-i', '-t', '--rm', '--rootfs', rootfs, 'sh')}; echo "__RUN__ $?"\n`,
        until: '/ # ',
        timeout: 30,
      },
      { write: 'tty; echo "rows=$(stty size)"\r', until: 'rows=\\d+ \\d+', timeout: 10 },
      { write: 'exit 3\r', until: '__RUN__ \\d+', timeout: 15 },
    ]);
    assert.match(output, /\/dev\/pts\/0\r+\n/);
    assert.match(output, /rows=24 80/, 'a terminal of unknown size (this pty is 0x0): docker’s 24x80');
    assert.match(output, /__RUN__ 3/, output);
  });

  test('a container with stdin and a terminal: input through the shim’s FIFO, output in the log as it comes, resize', async () => {
    const c = await rt.create(
      opts(['sh', '-c', 'tty; printf "prompt> "; read x; echo "got $x"; stty size'], {
        terminal: { rows: 20, cols: 70 },
        openStdin: true,
      }),
    );
    try {
      await rt.start(c.id);
      const input = await rt.openInput(c.id);
      let seen = '';
      for await (const entry of rt.logs(c.id, { follow: true })) {
        seen += entry.text + (entry.partial ? '' : '\n');
        // a prompt without a newline is in the log at once (a terminal's output is not held for lines)
        if (seen.includes('prompt> ')) {
          input.resize(33, 99);
          input.stdin!.write('hello\r');
          break;
        }
      }
      const exit = await rt.wait(c.id, { timeoutMs: 10_000 });
      assert.equal(exit.exitCode, 0);
      const log = await logText(rt, c.id);
      assert.match(log, /\/dev\/pts\/0/);
      assert.match(log, /got hello/);
      assert.match(log, /33 99/);
      input.close();
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('a container with stdin: a pipe the shim keeps open across writers, closed on request', async () => {
    const c = await rt.create(opts(['sh', '-c', 'cat; echo "stdin ended"'], { openStdin: true }));
    try {
      await rt.start(c.id);
      const first = await rt.openInput(c.id);
      first.stdin!.end('one\n');
      await new Promise((resolve) => setTimeout(resolve, 200));
      // the first writer went away: the container's stdin stays open for the next
      const second = await rt.openInput(c.id);
      second.stdin!.write('two\n');
      await new Promise((resolve) => setTimeout(resolve, 200));
      second.closeStdin();
      const exit = await rt.wait(c.id, { timeoutMs: 10_000 });
      assert.equal(exit.exitCode, 0);
      assert.equal(await logText(rt, c.id), 'stdout one\nstdout two\nstdout stdin ended\n');
      second.close();
      await assert.rejects(rt.openInput(c.id), /not running/);
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });
});

test('warm shims (the agent’s) give a container its stdin and terminal as a cold start does', async () => {
  const warm = await LinuxContainerRuntime.open({ root: join(work, 'warm-root'), warmShims: 1 });
  try {
    // the launcher parks its warm shims after its first start
    for (let round = 0; round < 3; round++) {
      const c = await warm.create(
        opts(['sh', '-c', 'tty; read x; echo "got $x"'], {
          terminal: { rows: 10, cols: 40 },
          openStdin: true,
        }),
      );
      await warm.start(c.id);
      const input = await warm.openInput(c.id);
      input.stdin!.write(`round ${round}\r`);
      assert.equal((await warm.wait(c.id, { timeoutMs: 10_000 })).exitCode, 0);
      const log = await logText(warm, c.id);
      assert.match(log, /\/dev\/pts\/0/);
      assert.match(log, new RegExp(`got round ${round}`));
      input.close();
      await warm.remove(c.id, { force: true });
    }
  } finally {
    for (const c of await warm.list({ all: true })) await warm.remove(c.id, { force: true });
  }
});
