/**
 * Pod streams: exec latency and port-forward throughput through the control plane, each beside a
 * reference measured in the same run.
 *
 *   node dist/test/bench/pod-streams.js [--rounds 3] [--mb 100] [--execs 30]
 *
 * A control plane (real etcd and NATS, in this process, test/harness) and a node agent (in this
 * process, as root) run busybox pods. Measured:
 * - exec of `true`, open to exit, through the API (ApiClient.podStream) against the same exec made
 *   on the node's runtime directly (what the agent does for it): the control plane's and the
 *   tunnel's share;
 * - the round trip of one byte through a running `cat` exec (typed input to its echo);
 * - `skiff exec POD -- true` as a whole CLI process;
 * - port-forward: `--mb` MB downloaded from, then uploaded to, a busybox `nc` in the pod through
 *   `skiff port-forward` (the CLI binary), against the same `nc` run on the host and reached
 *   directly over loopback; rounds alternate.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { connectApi } from '../../proto/client.js';
import type { Pod } from '../../proto/gen/types.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { componentLogger } from '../../proto/support/logger.js';
import { removeAgentNode, startAgent } from '../../node-agent/agent/main.js';

const HOST_NETNS = `skiff-psb-${process.pid}`;
import { LABEL_NAME } from '../../node-agent/agent/pod-sync.js';
import { busyboxImage } from '../fixtures/images.js';
import { launchTestControlPlane } from '../harness/control-plane.js';
import {
  openImageRuntimeWith,
  removeScratch,
  scratchDir,
} from '../integration/runtime-containers-fixture.js';

const NODE = 'bench-node';

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const percentile = (values: number[], p: number): number =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((values.length * p) / 100))]!;
const ms = (n: number): string => `${n.toFixed(2)} ms`;

/** Bytes read from host:port until the server ends the connection, and how long it took. */
async function download(port: number): Promise<{ bytes: number; seconds: number }> {
  const started = performance.now();
  const socket = connect(port, '127.0.0.1');
  socket.end();
  let bytes = 0;
  socket.on('data', (d: Buffer) => (bytes += d.length));
  await once(socket, 'close');
  return { bytes, seconds: (performance.now() - started) / 1000 };
}

/** `mb` MB written to host:port, until the server (a sink) closes. */
async function upload(port: number, mb: number): Promise<{ bytes: number; seconds: number }> {
  const chunk = Buffer.alloc(1024 * 1024, 'u');
  const started = performance.now();
  const socket = connect(port, '127.0.0.1');
  socket.on('data', () => undefined);
  for (let i = 0; i < mb; i++) if (!socket.write(chunk)) await once(socket, 'drain');
  socket.end();
  await once(socket, 'close');
  return { bytes: mb * chunk.length, seconds: (performance.now() - started) / 1000 };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      mb: { type: 'string', default: '100' },
      execs: { type: 'string', default: '30' },
    },
  });
  const rounds = Number(values.rounds);
  const mb = Number(values.mb);
  const execs = Number(values.execs);
  const cluster = await launchTestControlPlane('bench-pod-streams');
  const work = await scratchDir('skiff-bench-streams-');
  const root = join(work, 'root');
  const children: ChildProcess[] = [];
  const api = connectApi({ server: cluster.controlPlane.apiAddress, token: cluster.adminToken });
  let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
  try {
    await openImageRuntimeWith(root, join(work, 'images.tar'), [busyboxImage('busybox:1')]);
    // the node's pod network in a namespace of its own, never the machine's
    execFileSync('ip', ['netns', 'add', HOST_NETNS]);
    execFileSync('ip', ['-n', HOST_NETNS, 'link', 'set', 'lo', 'up']);
    agent = await startAgent({
      server: cluster.controlPlane.apiAddress,
      token: cluster.adminToken,
      nodeName: NODE,
      root,
      nodeIP: '127.0.0.1',
      hostNetns: `/run/netns/${HOST_NETNS}`,
      log: componentLogger('bench'),
    });
    const bytes = mb * 1024 * 1024;
    const script = (name: string, body: string): string =>
      `printf '#!/bin/sh\\n${body}\\n' > /tmp/${name} && chmod +x /tmp/${name}`;
    await api.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'bench', namespace: 'default' },
      spec: {
        nodeName: NODE,
        terminationGracePeriodSeconds: 1,
        containers: [
          { name: 'shell', image: 'busybox:1', command: ['sleep', '1000000'] },
          {
            name: 'source',
            image: 'busybox:1',
            command: [
              'sh',
              '-c',
              `${script('gen', `exec head -c ${bytes} /dev/zero`)} && exec nc -ll -p 9000 -e /tmp/gen`,
            ],
          },
          {
            name: 'sink',
            image: 'busybox:1',
            command: [
              'sh',
              '-c',
              `${script('sink', 'exec cat > /dev/null')} && exec nc -ll -p 9001 -e /tmp/sink`,
            ],
          },
        ],
      },
    } as Pod);
    for (;;) {
      const pod = (await api.get('Pod', 'default', 'bench')) as Pod;
      if (pod.status?.containerStatuses?.every((c) => c.state?.running)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 500));

    // exec: through the control plane, and on the runtime directly
    const containers = agent.runtime.runtime.containers;
    const shell = (
      await containers.list({ labels: { [LABEL_NAME]: 'bench', 'io.kubernetes.container.name': 'shell' } })
    )[0]!;
    const viaApi: number[] = [];
    const direct: number[] = [];
    for (let i = 0; i < execs; i++) {
      let started = performance.now();
      for await (const _ of api.podStream('Exec', {
        namespace: 'default',
        name: 'bench',
        container: 'shell',
        command: ['true'],
      }));
      viaApi.push(performance.now() - started);
      started = performance.now();
      const handle = await containers.exec(shell.id, { argv: ['true'], stdio: 'ignore' });
      await handle.exited;
      direct.push(performance.now() - started);
    }
    console.log(
      `exec true, open to exit (${execs}): through the control plane p50 ${ms(median(viaApi))} p90 ${ms(percentile(viaApi, 90))}; on the runtime directly p50 ${ms(median(direct))}; ratio ${(median(viaApi) / median(direct)).toFixed(2)}`,
    );
    // one byte's round trip through a running cat
    const cat = api.podStream('Exec', {
      namespace: 'default',
      name: 'bench',
      container: 'shell',
      command: ['cat'],
      stdin: true,
    });
    const frames = cat[Symbol.asyncIterator]();
    const rtts: number[] = [];
    for (let i = 0; i < 200; i++) {
      const started = performance.now();
      await cat.sendStdin(Buffer.from('x'));
      let got = 0;
      while (got < 1) got += (await frames.next()).value?.stdout?.length ?? 0;
      rtts.push(performance.now() - started);
    }
    cat.cancel();
    console.log(
      `exec round trip of one byte (cat, 200): p50 ${ms(median(rtts))} p99 ${ms(percentile(rtts, 99))}`,
    );
    const cliTimes: number[] = [];
    for (let i = 0; i < Math.min(10, execs); i++) {
      const started = performance.now();
      const child = spawn(
        process.execPath,
        [
          ...skiffEntryArgv(),
          '--server',
          cluster.controlPlane.apiAddress,
          '--token',
          cluster.adminToken,
          'exec',
          'bench',
          '-c',
          'shell',
          '--',
          'true',
        ],
        { stdio: 'ignore' },
      );
      await once(child, 'close');
      cliTimes.push(performance.now() - started);
    }
    console.log(
      `skiff exec POD -- true, the whole CLI process (${cliTimes.length}): p50 ${ms(median(cliTimes))}`,
    );
    // exec's own stdio, through the API in this process (no helper relay, no CLI)
    {
      let cpu = process.cpuUsage();
      let started = performance.now();
      let got = 0;
      for await (const frame of api.podStream('Exec', {
        namespace: 'default',
        name: 'bench',
        container: 'shell',
        command: ['sh', '-c', `head -c ${bytes} /dev/zero`],
      }))
        got += frame.stdout?.length ?? 0;
      const down = bytes / ((performance.now() - started) / 1000) / 1e6;
      const cpuOf = (since: NodeJS.CpuUsage, wallMs: number): string => {
        const used = process.cpuUsage(since);
        return `${((used.user + used.system) / 1e3).toFixed(0)} ms CPU in ${wallMs.toFixed(0)} ms`;
      };
      const downCpu = cpuOf(cpu, performance.now() - started);
      if (got !== bytes) throw new Error(`exec output: ${got} bytes of ${bytes}`);
      const sink = api.podStream('Exec', {
        namespace: 'default',
        name: 'bench',
        container: 'shell',
        command: ['sh', '-c', 'cat > /dev/null'],
        stdin: true,
      });
      const ended = (async () => {
        for await (const _ of sink);
      })();
      started = performance.now();
      cpu = process.cpuUsage();
      const chunk = Buffer.alloc(1024 * 1024, 'u');
      for (let i = 0; i < mb; i++) await sink.sendStdin(chunk);
      await sink.closeStdin();
      await ended;
      const up = bytes / ((performance.now() - started) / 1000) / 1e6;
      const upCpu = cpuOf(cpu, performance.now() - started);
      console.log(
        `exec stdio through the API, ${mb} MB: output ${down.toFixed(0)} MB/s (${downCpu} here), input ${up.toFixed(0)} MB/s (${upCpu})`,
      );
    }

    // port-forward against the same nc on the host, reached directly
    writeFileSync(join(work, 'gen'), `#!/bin/sh\nexec /bin/busybox head -c ${bytes} /dev/zero\n`);
    writeFileSync(join(work, 'sink'), '#!/bin/sh\nexec /bin/busybox cat > /dev/null\n');
    chmodSync(join(work, 'gen'), 0o755);
    chmodSync(join(work, 'sink'), 0o755);
    const hostSource = spawn('/bin/busybox', ['nc', '-ll', '-p', '19000', '-e', join(work, 'gen')]);
    const hostSink = spawn('/bin/busybox', ['nc', '-ll', '-p', '19001', '-e', join(work, 'sink')]);
    children.push(hostSource, hostSink);
    const forward = spawn(
      process.execPath,
      [
        ...skiffEntryArgv(),
        '--server',
        cluster.controlPlane.apiAddress,
        '--token',
        cluster.adminToken,
        'port-forward',
        'bench',
        '29000:9000',
        '29001:9001',
        '--address',
        '127.0.0.1',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(forward);
    let said = '';
    forward.stdout!.on('data', (d) => (said += d));
    while ((said.match(/Forwarding from/g) ?? []).length < 2) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    const rate = (r: { bytes: number; seconds: number }): number => r.bytes / r.seconds / 1e6;
    const down: [number, number][] = [];
    const up: [number, number][] = [];
    for (let round = 0; round < rounds; round++) {
      const viaDown = await download(29000);
      const directDown = await download(19000);
      if (viaDown.bytes !== bytes || directDown.bytes !== bytes)
        throw new Error(`download: ${viaDown.bytes} and ${directDown.bytes} bytes of ${bytes}`);
      down.push([rate(viaDown), rate(directDown)]);
      up.push([rate(await upload(29001, mb)), rate(await upload(19001, mb))]);
      console.log(
        `round ${round + 1}: download ${down.at(-1)![0].toFixed(0)} vs ${down.at(-1)![1].toFixed(0)} MB/s, upload ${up.at(-1)![0].toFixed(0)} vs ${up.at(-1)![1].toFixed(0)} MB/s (port-forward vs direct)`,
      );
    }
    const summary = (pairs: [number, number][]): string =>
      `${median(pairs.map((p) => p[0])).toFixed(0)} MB/s vs ${median(pairs.map((p) => p[1])).toFixed(0)} MB/s direct (${median(pairs.map((p) => p[0] / p[1])).toFixed(2)}×)`;
    console.log(
      `port-forward of ${mb} MB, median of ${rounds}: download ${summary(down)}; upload ${summary(up)}`,
    );
    // Ctrl-C, as a user ends it (and a CPU profile, if one was asked for, is written)
    forward.kill('SIGINT');
    await once(forward, 'close');
  } finally {
    for (const child of children) child.kill('SIGKILL');
    await agent?.stop().catch(() => undefined);
    await removeAgentNode(root, { hostNetns: `/run/netns/${HOST_NETNS}` }).catch(() => []);
    try {
      execFileSync('ip', ['netns', 'del', HOST_NETNS]);
    } catch {
      // never made
    }
    api.close();
    await cluster.dispose();
    await removeScratch(work);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
