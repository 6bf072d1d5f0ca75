/**
 * skiff-helper runs from a sealed memfd copy of itself (CVE-2019-5736): an image script
 * "#!/proc/self/exe launcher" re-runs the helper inside the container, where a probe finds it
 * through /proc and tries to write to its executable; that must be the sealed copy, never the
 * host's binary, and the shim's and exec helper's /proc/<pid>/exe must name it too.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  LinuxContainerRuntime,
  type CreateContainerOptions,
} from '../../node-agent/runtime/containers/container-runtime.js';
import { helperPath } from '../../node-agent/runtime/sys/helper.js';
import { makeHostileRootfs, requireHostileTools } from './hostile-probe.js';
import { logText, onRootfs, withScratchRuntime } from './runtime-containers-fixture.js';

let rootfs: string;
let rt: LinuxContainerRuntime;

withScratchRuntime('skiff-sealed-helper-', async (work) => {
  requireHostileTools();
  rootfs = await makeHostileRootfs(join(work, 'rootfs'), work);
  rt = await LinuxContainerRuntime.open({ root: join(work, 'root') });
  return rt;
});

function opts(argv: string[], extra: Partial<CreateContainerOptions> = {}): CreateContainerOptions {
  return onRootfs(rootfs, argv, extra);
}

describe('skiff-helper runs from a sealed copy (CVE-2019-5736)', () => {
  test('#!/proc/self/exe in a container reaches a sealed memfd, never the host binary', async () => {
    const hostBinary = helperPath();
    const before = createHash('sha256').update(readFileSync(hostBinary)).digest('hex');
    const c = await rt.create(opts(['/probe', 'grab']));
    try {
      const started = await rt.start(c.id);
      assert.match(await readlink(`/proc/${started.state.shimPid}/exe`), /^\/memfd:skiff-helper/);
      // the image's script runs the helper inside the container; its stdin keeps it there
      const handle = await rt.exec(c.id, { argv: ['/innocent'], stdio: ['pipe', 'ignore', 'ignore'] });
      const exit = await rt.wait(c.id, { timeoutMs: 30_000 });
      handle.child.stdin!.end();
      await handle.exited;
      const log = await logText(rt, c.id);
      assert.equal(exit.exitCode, 0, log);
      assert.match(log, /exe: \/memfd:skiff-helper/);
      assert.match(log, /(open for writing|write): Operation not permitted|open for writing: Text file busy/);
      assert.doesNotMatch(log, /WRITTEN/);
      assert.equal(createHash('sha256').update(readFileSync(hostBinary)).digest('hex'), before);
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test("an exec helper's own executable is the sealed copy", async () => {
    const c = await rt.create(opts(['sleep', '1000']));
    try {
      await rt.start(c.id);
      const handle = await rt.exec(c.id, { argv: ['sleep', '30'] });
      assert.match(await readlink(`/proc/${handle.child.pid}/exe`), /^\/memfd:skiff-helper/);
      handle.child.kill('SIGKILL');
      await handle.exited;
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  test('the launcher re-executes from its sealed copy once, with the same arguments', async () => {
    const launcher = spawn(helperPath(), ['launcher'], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      // it re-executes itself right after its start: wait for that, however loaded the machine
      let exe = '';
      for (let i = 0; i < 250 && !exe.startsWith('/memfd:'); i++) {
        await new Promise((r) => setTimeout(r, 20));
        exe = await readlink(`/proc/${launcher.pid}/exe`).catch(() => '');
      }
      assert.match(exe, /^\/memfd:skiff-helper/);
      assert.equal(await readFile(`/proc/${launcher.pid}/cmdline`, 'utf8'), `${helperPath()}\0launcher\0`);
    } finally {
      launcher.stdin!.end();
      await new Promise((r) => launcher.once('exit', r));
    }
  });
});
