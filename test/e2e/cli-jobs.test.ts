/**
 * Jobs through the CLI against a real control plane (etcd, NATS, no agents): the Job controller on
 * the leader runs a Job's pods to completion, stops a Job whose pods fail at its backoffLimit, and
 * `skiff scale job` sets its parallelism. There are no agents here: a stand-in in this process
 * plays their part through the API, marking each pod of a Job named ok-* Succeeded and of one named
 * fail-* Failed (exit code 1); pods of other Jobs it leaves running. That real agents run a Job's
 * pods is the agents' tests' business. The CronJob test waits for the next full minute.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiClient } from '../../proto/client.js';
import type { CronJob, Job, Pod } from '../../proto/gen/types.js';
import { until } from '../harness/until.js';
import {
  connectCluster,
  standIn,
  startTestCluster,
  type RunResult,
  type TestCluster,
} from './cli-harness.js';

function ok(result: RunResult, what: string): string {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result.stdout;
}

describe('Jobs through the CLI', () => {
  let cluster: TestCluster;
  let api: ApiClient;
  let agents: { stop(): Promise<void> } | undefined;
  before(async () => {
    cluster = await startTestCluster('jobs');
    api = connectCluster(cluster);
    const finishPods = async () => {
      const { items } = await api.list('Pod', { namespace: 'default' });
      for (const pod of items as Pod[]) {
        const job = pod.metadata.labels?.['batch.kubernetes.io/job-name'] ?? '';
        const phase = job.startsWith('ok-') ? 'Succeeded' : job.startsWith('fail-') ? 'Failed' : undefined;
        if (phase === undefined || pod.metadata.deletionTimestamp || pod.status?.phase === phase) continue;
        const exitCode = phase === 'Succeeded' ? 0 : 1;
        await api
          .updateStatus({
            ...pod,
            status: {
              phase,
              containerStatuses: [
                {
                  name: pod.spec.containers?.[0]?.name ?? '',
                  image: pod.spec.containers?.[0]?.image ?? '',
                  ready: false,
                  restartCount: 0,
                  state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error' } },
                },
              ],
            },
          })
          .catch(() => {});
      }
    };
    agents = standIn(finishPods);
  });
  after(async () => {
    await agents?.stop();
    api?.close();
    await cluster?.dispose();
  });

  const getJob = async (name: string) => (await api.get('Job', 'default', name)) as Job;

  test('create job, then wait --for=condition=Complete', async () => {
    ok(await cluster.skiff(['create', 'job', 'ok-once', '--image', 'busybox:1', '--', 'true']), 'create job');
    const waited = ok(
      await cluster.skiff(['wait', '--for=condition=Complete', 'job/ok-once', '--timeout=60s']),
      'wait',
    );
    assert.match(waited, /job\.batch\/ok-once condition met/);
    const job = await getJob('ok-once');
    assert.equal(job.status?.succeeded, 1);
    assert.ok(job.status?.completionTime);
    const pods = ok(await cluster.skiff(['get', 'pods', '-l', 'job-name=ok-once', '-o', 'name']), 'get pods');
    assert.equal(pods.trim().split('\n').length, 1, pods);
  });

  test('a Job whose pods fail stops at its backoffLimit with condition Failed', async () => {
    const manifest = `apiVersion: batch/v1
kind: Job
metadata: {name: fail-always, namespace: default}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, image: 'busybox:1', command: ['false']}]
`;
    ok(await cluster.skiff(['apply', '-f', '-'], { input: manifest }), 'apply');
    // one failure, a 10 s back-off, the second failure passes the limit
    ok(
      await cluster.skiff(['wait', '--for=condition=Failed', 'job/fail-always', '--timeout=60s']),
      'wait Failed',
    );
    const job = await getJob('fail-always');
    const failed = job.status?.conditions?.find((c) => c.type === 'Failed');
    assert.equal(failed?.reason, 'BackoffLimitExceeded');
    assert.equal(job.status?.failed, 2);
    const described = ok(await cluster.skiff(['describe', 'job', 'fail-always']), 'describe');
    assert.match(described, /BackoffLimitExceeded/);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const pods = ok(
      await cluster.skiff(['get', 'pods', '-l', 'job-name=fail-always', '-o', 'name']),
      'get pods',
    );
    assert.equal(pods.trim().split('\n').length, 2, `no third pod: ${pods}`);
  });

  test('scale job sets its parallelism', async () => {
    const manifest = `apiVersion: batch/v1
kind: Job
metadata: {name: hold-work, namespace: default}
spec:
  completions: 5
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, image: 'busybox:1'}]
`;
    ok(await cluster.skiff(['apply', '-f', '-'], { input: manifest }), 'apply');
    await until('1 active', async () =>
      (await getJob('hold-work')).status?.active === 1 ? true : undefined,
    );
    const scaled = ok(await cluster.skiff(['scale', 'job', 'hold-work', '--replicas', '3']), 'scale');
    assert.match(scaled, /job\.batch\/hold-work scaled/);
    assert.equal((await getJob('hold-work')).spec.parallelism, 3);
    await until('3 active', async () =>
      (await getJob('hold-work')).status?.active === 3 ? true : undefined,
    );
  });

  test('ttlSecondsAfterFinished deletes the finished Job, and the garbage collector its pods', async () => {
    const manifest = `apiVersion: batch/v1
kind: Job
metadata: {name: ok-brief, namespace: default}
spec:
  completions: 2
  ttlSecondsAfterFinished: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, image: 'busybox:1'}]
`;
    ok(await cluster.skiff(['apply', '-f', '-'], { input: manifest }), 'apply');
    await until('the Job and its pods gone', async () => {
      const jobs = ok(await cluster.skiff(['get', 'jobs', '-o', 'name']), 'get jobs');
      const pods = ok(
        await cluster.skiff(['get', 'pods', '-l', 'job-name=ok-brief', '-o', 'name']),
        'get pods',
      );
      return !jobs.includes('job.batch/ok-brief') && pods.trim() === '' ? true : undefined;
    });
  });

  test('a CronJob makes a Job at its next minute, named by it, and records its success', async () => {
    const manifest = `apiVersion: batch/v1
kind: CronJob
metadata: {name: ok-minutely, namespace: default}
spec:
  schedule: '* * * * *'
  timeZone: Etc/UTC
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: work, image: 'busybox:1'}]
`;
    ok(await cluster.skiff(['apply', '-f', '-'], { input: manifest }), 'apply');
    const jobName = await until(
      'a Job of the CronJob',
      async () => {
        const names = ok(await cluster.skiff(['get', 'jobs', '-o', 'name']), 'get jobs');
        return /job\.batch\/(ok-minutely-\d+)/.exec(names)?.[1];
      },
      75_000,
      500,
    );
    const minutes = Number(jobName.slice('ok-minutely-'.length));
    assert.ok(Math.abs(minutes * 60_000 - Date.now()) < 120_000, `${jobName} is named by its minute`);
    ok(
      await cluster.skiff(['wait', '--for=condition=Complete', `job/${jobName}`, '--timeout=60s']),
      'wait Complete',
    );
    await until(
      'lastSuccessfulTime',
      async () =>
        ((await api.get('CronJob', 'default', 'ok-minutely')) as CronJob).status?.lastSuccessfulTime,
    );
    const listed = ok(await cluster.skiff(['get', 'cronjob', 'ok-minutely']), 'get cronjob');
    assert.match(listed, /\nok-minutely\s+\* \* \* \* \*\s+Etc\/UTC\s+False\s+0\s+\d+s\s+/);
  });
});
