/**
 * A Clock for tests (of the work queue, the scheduling queue): time moves only when `advance` is
 * called, which fires the timers that fall due, in order.
 */
import type { Clock } from './work-queue.js';

export class ManualClock implements Clock {
  private time: number;
  private timers: { at: number; fn: () => void; cancelled: boolean }[] = [];

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): { cancel(): void } {
    const timer = { at: this.time + ms, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }

  advance(ms: number): void {
    this.time += ms;
    const due = this.timers.filter((t) => !t.cancelled && t.at <= this.time).sort((a, b) => a.at - b.at);
    this.timers = this.timers.filter((t) => !due.includes(t) && !t.cancelled);
    for (const timer of due) timer.fn();
  }
}
