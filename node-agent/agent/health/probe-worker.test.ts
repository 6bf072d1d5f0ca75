import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './fake-clock.js';
import {
  ProbeWorker,
  probeSettings,
  type ProbeKind,
  type ProbeOutcome,
  type ProbeResult,
} from './probe-worker.js';

const ok: ProbeOutcome = { result: 'success', message: '' };
const bad: ProbeOutcome = { result: 'failure', message: 'HTTP probe failed with statuscode: 500' };
const broken: ProbeOutcome = { result: 'error', message: 'couldn\'t find port "web"' };

/** A worker whose probe answers from `script` (the last entry repeats), recording what happens. */
function harness(
  kind: ProbeKind,
  probe: Parameters<typeof probeSettings>[0],
  script: ProbeOutcome[],
  extra: { gate?: () => boolean; startedAgoMs?: number } = {},
) {
  const clock = new FakeClock();
  const runs: number[] = [];
  const results: ProbeResult[] = [];
  const outcomes: string[] = [];
  let i = 0;
  const worker = new ProbeWorker({
    kind,
    settings: probeSettings(probe),
    startedAtMs: clock.now() - (extra.startedAgoMs ?? 0),
    clock,
    probe: async () => {
      runs.push(clock.now());
      return script[Math.min(i++, script.length - 1)]!;
    },
    ...(extra.gate ? { gate: extra.gate } : {}),
    onOutcome: (o) => outcomes.push(o.result),
    onResult: (r) => results.push(r),
  });
  const t0 = clock.now();
  /** When each run happened, in seconds after the start. */
  const at = () => runs.map((r) => (r - t0) / 1000);
  return { clock, worker, runs, at, results, outcomes };
}

describe('probe settings', () => {
  test("Kubernetes' defaults and minimums", () => {
    assert.deepEqual(probeSettings({}), {
      initialDelayMs: 0,
      periodMs: 10_000,
      timeoutMs: 1000,
      successThreshold: 1,
      failureThreshold: 3,
    });
    assert.deepEqual(
      probeSettings({
        initialDelaySeconds: 5,
        periodSeconds: 2,
        timeoutSeconds: 3,
        successThreshold: 2,
        failureThreshold: 1,
      }),
      { initialDelayMs: 5000, periodMs: 2000, timeoutMs: 3000, successThreshold: 2, failureThreshold: 1 },
    );
    assert.equal(probeSettings({ periodSeconds: 0, timeoutSeconds: 0 }).periodMs, 10_000);
  });
});

describe('probe worker: scheduling', () => {
  test('first run after the initial delay from the container start, then every period', async () => {
    const h = harness('readiness', { initialDelaySeconds: 5, periodSeconds: 10 }, [ok]);
    h.worker.start();
    await h.clock.advance(4_999);
    assert.deepEqual(h.at(), []);
    await h.clock.advance(31_000);
    assert.deepEqual(h.at(), [5, 15, 25, 35]);
  });

  test('a container that started long ago is probed at once', async () => {
    const h = harness('liveness', { initialDelaySeconds: 5 }, [ok], { startedAgoMs: 60_000 });
    h.worker.start();
    await h.clock.advance(0);
    assert.deepEqual(h.at(), [0]);
  });

  test('a slow probe: the next run comes a period after the last one started, never two at once', async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    const starts: number[] = [];
    let inFlight = 0;
    let most = 0;
    const worker = new ProbeWorker({
      kind: 'readiness',
      settings: probeSettings({ periodSeconds: 2, timeoutSeconds: 3 }),
      startedAtMs: clock.now(),
      clock,
      probe: () => {
        starts.push((clock.now() - t0) / 1000);
        inFlight++;
        most = Math.max(most, inFlight);
        return new Promise((resolve) =>
          clock.setTimer(() => {
            inFlight--;
            resolve(ok);
          }, 3000),
        );
      },
      onResult: () => {},
    });
    worker.start();
    await clock.advance(10_000);
    assert.equal(most, 1);
    assert.deepEqual(starts, [0, 3, 6, 9]);
  });

  test('stop() cancels the timer: nothing runs afterwards and no timer is left', async () => {
    const h = harness('readiness', { periodSeconds: 1 }, [ok]);
    h.worker.start();
    await h.clock.advance(2_500);
    h.worker.stop();
    const before = h.runs.length;
    await h.clock.advance(10_000);
    assert.equal(h.runs.length, before);
    assert.equal(h.clock.pending, 0);
  });

  test('a gated probe does not run (nor count) until the gate opens; trigger() runs it at once', async () => {
    let open = false;
    const h = harness('readiness', { periodSeconds: 10 }, [ok], { gate: () => open });
    h.worker.start();
    await h.clock.advance(25_000);
    assert.deepEqual(h.at(), []);
    open = true;
    h.worker.trigger();
    await h.clock.advance(0);
    assert.deepEqual(h.at(), [25]);
    assert.deepEqual(h.results, ['success']);
  });
});

describe('probe worker: thresholds and results', () => {
  test('readiness starts failed, turns ready after successThreshold successes and back after failureThreshold failures', async () => {
    const h = harness('readiness', { periodSeconds: 1, successThreshold: 2, failureThreshold: 3 }, [
      ok,
      ok,
      ok,
      bad,
      bad,
      ok,
      bad,
      bad,
      bad,
      ok,
    ]);
    assert.equal(h.worker.result, 'failure');
    h.worker.start();
    await h.clock.advance(0);
    assert.equal(h.worker.result, 'failure', 'one success is below the threshold of 2');
    await h.clock.advance(1000);
    assert.equal(h.worker.result, 'success');
    await h.clock.advance(4000); // bad bad ok bad: no run of three failures yet
    assert.equal(h.worker.result, 'success');
    await h.clock.advance(3000); // bad bad bad: three in a row
    assert.equal(h.worker.result, 'failure');
    await h.clock.advance(2000); // ok, then ok (repeats): two in a row again
    assert.deepEqual(h.results, ['success', 'failure', 'success']);
    assert.equal(h.outcomes.filter((o) => o === 'failure').length, 5, 'every failure is reported');
  });

  test('liveness starts alive; failureThreshold failures in a row fail it once and hold it: no more runs', async () => {
    const h = harness('liveness', { periodSeconds: 1, failureThreshold: 3 }, [bad, ok, bad, bad, bad, ok]);
    assert.equal(h.worker.result, 'success');
    h.worker.start();
    await h.clock.advance(10_000);
    assert.deepEqual(h.results, ['failure']);
    assert.deepEqual(h.at(), [0, 1, 2, 3, 4]);
    assert.equal(h.worker.done, true);
    assert.equal(h.clock.pending, 0);
  });

  test('errors are reported but count neither way', async () => {
    const h = harness('liveness', { periodSeconds: 1, failureThreshold: 2 }, [bad, broken, broken, bad]);
    h.worker.start();
    await h.clock.advance(2_000);
    assert.deepEqual(h.outcomes, ['failure', 'error', 'error']);
    assert.deepEqual(h.results, []);
    await h.clock.advance(1000);
    assert.deepEqual(h.results, ['failure'], 'the errors broke no run: this failure is the second in a row');
  });

  test('startup: unknown until it succeeds, then stops; failureThreshold failures fail it', async () => {
    const up = harness('startup', { periodSeconds: 1, failureThreshold: 30 }, [bad, bad, ok]);
    assert.equal(up.worker.result, undefined);
    up.worker.start();
    await up.clock.advance(10_000);
    assert.deepEqual(up.results, ['success']);
    assert.deepEqual(up.at(), [0, 1, 2]);
    assert.equal(up.clock.pending, 0);
    const down = harness('startup', { periodSeconds: 1, failureThreshold: 3 }, [bad]);
    down.worker.start();
    await down.clock.advance(10_000);
    assert.deepEqual(down.results, ['failure']);
    assert.deepEqual(down.at(), [0, 1, 2]);
  });
});
