import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { BuildProgress } from './image.js';

/** A stream that keeps what is written to it. */
function sink(): Writable & { text: string } {
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      out.text += chunk.toString();
      done();
    },
  }) as Writable & { text: string };
  out.text = '';
  return out;
}

test('build progress, not on a terminal: a line per step, CACHED after cached ones, RUN output between', () => {
  const out = sink();
  const progress = new BuildProgress(out, false);
  progress.onEvent({ type: 'step', step: 1, total: 3, text: 'FROM busybox', cached: true });
  progress.onEvent({ type: 'step', step: 2, total: 3, text: 'RUN echo hi', cached: false });
  progress.onEvent({ type: 'output', step: 2, stream: 'stdout', text: 'h', partial: true });
  progress.onEvent({ type: 'output', step: 2, stream: 'stdout', text: 'i', partial: false });
  progress.onEvent({ type: 'step', step: 3, total: 3, text: 'CMD ["sh"]', cached: true });
  progress.finish();
  assert.equal(out.text, '[1/3] FROM busybox CACHED\n[2/3] RUN echo hi\nhi\n[3/3] CMD ["sh"] CACHED\n');
});

test('build progress on a terminal: the running step shows its time, redrawn in place, ended by output', () => {
  const out = sink();
  let now = 1000;
  const progress = new BuildProgress(out, true, () => now);
  progress.onEvent({ type: 'step', step: 2, total: 3, text: 'RUN make', cached: false });
  now = 3500;
  progress.onEvent({ type: 'output', step: 2, stream: 'stderr', text: 'warning', partial: false });
  progress.finish();
  assert.equal(out.text, '[2/3] RUN make\r\x1b[2K[2/3] RUN make 2.5s\nwarning\n');
});
