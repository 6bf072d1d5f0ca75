/**
 * `skiff apply` of many objects against creating them through the API client, and an unchanged
 * re-apply against one list of them, in the same run (issue 9):
 *
 *   node dist/test/bench/apply.js [--objects 2000] [--concurrency 16] [--rounds 3] [--profile DIR]
 *
 * Each round uses a namespace of its own: `objects` ConfigMaps are (1) created through the typed
 * client, `concurrency` in flight, in namespace A; (2) applied from one file by the real CLI
 * (`skiff apply -f`, the whole process) into namespace B; (3) applied again unchanged; and (4)
 * listed by the real CLI (`skiff get cm -n B -o name`, the whole process). Prints the ratios
 * apply / client create (goal ≤ 2) and re-apply / list (goal ≤ 2) per round and their medians.
 * With --profile, the control plane and every first apply write CPU profiles into DIR
 * (`apply-<round>.cpuprofile`; the control plane's is written when it exits).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectApi, type ApiClient } from '../../proto/client.js';
import type { ConfigMap } from '../../proto/gen/types.js';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { startBenchCluster } from './api-create.js';

function configMap(name: string, namespace: string): ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, labels: { app: 'bench' } },
    data: { 'app.conf': `name=${name}\nreplicas=3\nmode=production\n`, owner: 'bench' },
  };
}

function manifest(count: number, namespace: string): string {
  return Array.from({ length: count }, (_, i) => {
    const cm = configMap(`cm-${i}`, namespace);
    return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${cm.metadata.name}\n  namespace: ${namespace}\n  labels: {app: bench}\ndata:\n  app.conf: |\n    name=cm-${i}\n    replicas=3\n    mode=production\n  owner: bench\n`;
  }).join('---\n');
}

async function createAll(
  api: ApiClient,
  count: number,
  namespace: string,
  concurrency: number,
): Promise<number> {
  let next = 0;
  const began = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let n = next++; n < count; n = next++) await api.create(configMap(`cm-${n}`, namespace));
    }),
  );
  return (performance.now() - began) / 1000;
}

function skiff(args: string[], env: NodeJS.ProcessEnv, nodeArgs: string[] = []): Promise<number> {
  const began = performance.now();
  return new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      [...nodeArgs, ...skiffEntryArgv(), ...args],
      { env, maxBuffer: 64 << 20 },
      (err, _out, stderr) =>
        err
          ? reject(new Error(`skiff ${args.join(' ')}: ${stderr}`))
          : resolve((performance.now() - began) / 1000),
    ),
  );
}

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      objects: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '16' },
      rounds: { type: 'string', default: '3' },
      /** Write CPU profiles of the control plane and of each first apply into this directory. */
      profile: { type: 'string' },
    },
  });
  const count = Number(values.objects);
  const concurrency = Number(values.concurrency);
  const rounds = Number(values.rounds);
  const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-apply-'));
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const profile = (name: string): string[] =>
      values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile, '--cpu-prof-name', name] : [];
    const cluster = await startBenchCluster(dir, cleanups, {
      nodeArgs: profile('controlplane.cpuprofile'),
    });
    const api = connectApi({ server: cluster.apiAddress, token: cluster.token, tls: { ca: cluster.ca } });
    cleanups.push(() => api.close());
    const env = { ...process.env, SKIFF_CONFIG: join(dir, 'config') };
    writeFileSync(
      env.SKIFF_CONFIG,
      `server: ${cluster.apiAddress}\ntoken: ${cluster.token}\nca: ${cluster.caFile}\n`,
      {
        mode: 0o600,
      },
    );
    const applyRatios: number[] = [];
    const reapplyRatios: number[] = [];
    console.log(`${count} ConfigMaps; client creates ${concurrency} in flight; times in seconds`);
    console.log('round  client-create  apply  ratio  |  re-apply  list  ratio');
    for (let round = 1; round <= rounds; round++) {
      const direct = `direct-${round}`;
      const applied = `applied-${round}`;
      for (const name of [direct, applied])
        await api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name }, spec: {} });
      const file = join(dir, `round-${round}.yaml`);
      writeFileSync(file, manifest(count, applied));
      const create = await createAll(api, count, direct, concurrency);
      const apply = await skiff(['apply', '-f', file], env, profile(`apply-${round}.cpuprofile`));
      const reapply = await skiff(['apply', '-f', file], env);
      const list = await skiff(['get', 'cm', '-n', applied, '-o', 'name'], env);
      applyRatios.push(apply / create);
      reapplyRatios.push(reapply / list);
      console.log(
        `${String(round).padStart(5)}  ${create.toFixed(2).padStart(13)}  ${apply.toFixed(2).padStart(5)}  ${(apply / create).toFixed(2).padStart(5)}  |  ${reapply.toFixed(2).padStart(8)}  ${list.toFixed(2).padStart(4)}  ${(reapply / list).toFixed(2).padStart(5)}`,
      );
    }
    console.log(
      `median: apply / client create ${median(applyRatios).toFixed(2)} (goal ≤ 2); unchanged re-apply / list ${median(reapplyRatios).toFixed(2)} (goal ≤ 2)`,
    );
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
