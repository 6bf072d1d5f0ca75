import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Container } from '../../../proto/gen/types.js';
import { FakeClock } from './fake-clock.js';
import { Prober, type ProbedContainer } from './prober.js';
import type { ProbeKind, ProbeOutcome } from './probe-worker.js';

const ok: ProbeOutcome = { result: 'success', message: '' };
const bad: ProbeOutcome = { result: 'failure', message: 'nope' };

/** A prober whose probes answer from `answers[kind]` (changeable), recording what it reports. */
function harness() {
  const clock = new FakeClock();
  const answers: Partial<Record<ProbeKind, ProbeOutcome>> = {};
  const runs: string[] = [];
  const kills: string[] = [];
  const changes: string[] = [];
  const outcomes: string[] = [];
  const prober = new Prober({
    clock,
    run: async (key, c, kind) => {
      runs.push(`${c.id}:${kind}`);
      return answers[kind] ?? ok;
    },
    onOutcome: (key, c, kind, o) => outcomes.push(`${c.id}:${kind}:${o.result}`),
    onKill: (key, c, kind) => kills.push(`${c.id}:${kind}`),
    onChange: (key) => changes.push(key),
  });
  const container = (id: string, spec: Partial<Container>): ProbedContainer => ({
    id,
    spec: { name: 'main', ...spec },
    startedAtMs: clock.now(),
  });
  return { clock, answers, runs, kills, changes, outcomes, prober, container };
}

describe('prober', () => {
  test('a container without probes is started and ready, and gets no worker', () => {
    const h = harness();
    h.prober.sync('ns/p', [h.container('c1', {})]);
    assert.equal(h.prober.workerCount, 0);
    assert.equal(h.prober.started('ns/p', 'c1', { name: 'main' }), true);
    assert.equal(h.prober.ready('ns/p', 'c1', { name: 'main' }), true);
  });

  test('a startup probe holds liveness and readiness off; once it succeeds, readiness runs at once', async () => {
    const h = harness();
    const spec = {
      startupProbe: { exec: { command: ['up'] }, periodSeconds: 1, failureThreshold: 30 },
      livenessProbe: { exec: { command: ['alive'] }, periodSeconds: 10 },
      readinessProbe: { exec: { command: ['ready'] }, periodSeconds: 10 },
    };
    h.answers.startup = bad;
    h.prober.sync('ns/p', [h.container('c1', spec)]);
    await h.clock.advance(3_500);
    assert.deepEqual(h.runs, ['c1:startup', 'c1:startup', 'c1:startup', 'c1:startup']);
    assert.equal(h.prober.started('ns/p', 'c1', { name: 'main', ...spec }), false);
    assert.equal(h.prober.ready('ns/p', 'c1', { name: 'main', ...spec }), false);
    h.answers.startup = ok;
    await h.clock.advance(1000);
    assert.deepEqual(h.runs.slice(4), ['c1:startup', 'c1:readiness', 'c1:liveness']);
    assert.equal(h.prober.started('ns/p', 'c1', { name: 'main', ...spec }), true);
    assert.equal(h.prober.ready('ns/p', 'c1', { name: 'main', ...spec }), true);
    assert.ok(h.changes.length >= 2, 'started, then ready, each asked for a reconcile');
    assert.deepEqual(h.kills, []);
  });

  test('liveness failing failureThreshold times asks for a kill once; the next attempt gets fresh workers', async () => {
    const h = harness();
    const spec = { livenessProbe: { exec: { command: ['alive'] }, periodSeconds: 1, failureThreshold: 2 } };
    h.answers.liveness = bad;
    h.prober.sync('ns/p', [h.container('c1', spec)]);
    await h.clock.advance(5_000);
    assert.deepEqual(h.kills, ['c1:liveness']);
    assert.deepEqual(h.outcomes, ['c1:liveness:failure', 'c1:liveness:failure']);
    h.answers.liveness = ok;
    h.prober.sync('ns/p', [h.container('c2', spec)]);
    assert.equal(h.prober.workerCount, 1, "c1's worker went with it");
    await h.clock.advance(3_000);
    assert.deepEqual(h.kills, ['c1:liveness']);
    assert.ok(h.runs.filter((r) => r.startsWith('c2')).length >= 3);
  });

  test('containers that stop running lose their workers; forget() and close() leave no timer', async () => {
    const h = harness();
    const spec = { readinessProbe: { exec: { command: ['r'] }, periodSeconds: 1 } };
    h.prober.sync('ns/a', [h.container('a1', spec)]);
    h.prober.sync('ns/b', [h.container('b1', spec), h.container('b2', spec)]);
    assert.equal(h.prober.workerCount, 3);
    h.prober.sync('ns/b', [h.container('b2', spec)]);
    assert.equal(h.prober.workerCount, 2);
    h.prober.forget('ns/a');
    assert.equal(h.prober.workerCount, 1);
    h.prober.close();
    assert.equal(h.prober.workerCount, 0);
    await h.clock.advance(0);
    assert.equal(h.clock.pending, 0);
  });
});
