/**
 * When a cron schedule (parsed by the API's validator, ../../api/validation/cron.ts) fires, in a
 * time zone: the minutes whose wall-clock time in that zone matches every field. As robfig/cron
 * (which Kubernetes uses), day of month and day of week are either-or when both are restricted.
 * `@every D` fires every D from the reference time.
 *
 * Scans go a minute at a time over UTC, with the zone's offset looked up once per hour, bounded by
 * the range asked about (a schedule's next time is looked for at most a year ahead).
 */
import { parseCronSchedule, type CronSchedule } from '../../api/validation/cron.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const YEAR_MS = 366 * 24 * HOUR_MS;

export class ScheduleTimes {
  private readonly schedule: CronSchedule;
  private readonly offsets = new Map<number, number>();
  private readonly format: Intl.DateTimeFormat;

  /** `timeZone` an IANA name; undefined: the control plane's own zone. Throws on a bad schedule. */
  constructor(schedule: string, timeZone: string | undefined) {
    this.schedule = parseCronSchedule(schedule);
    this.format = new Intl.DateTimeFormat('en-US', {
      ...(timeZone !== undefined ? { timeZone } : {}),
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
    });
  }

  /**
   * The schedule times in (after, upTo]: the most recent one and how many there are (counting stops
   * past `countLimit`, as Kubernetes stops at 100 missed runs).
   */
  missed(after: number, upTo: number, countLimit = 101): { mostRecent: number | undefined; count: number } {
    if (this.schedule.kind === 'every') {
      const step = this.schedule.seconds * 1000;
      const count = Math.max(0, Math.floor((upTo - after) / step));
      return { mostRecent: count > 0 ? after + count * step : undefined, count: Math.min(count, countLimit) };
    }
    let mostRecent: number | undefined;
    for (let t = floorMinute(upTo); t > after; t -= MINUTE_MS)
      if (this.matches(t)) {
        mostRecent = t;
        break;
      }
    if (mostRecent === undefined) return { mostRecent, count: 0 };
    let count = 0;
    for (let t = floorMinute(after) + MINUTE_MS; t <= mostRecent && count < countLimit; t += MINUTE_MS)
      if (t > after && this.matches(t)) count++;
    return { mostRecent, count };
  }

  /** The first schedule time after `after` (`reference`: where @every counts from), within a year. */
  next(after: number, reference = after): number | undefined {
    if (this.schedule.kind === 'every') {
      const step = this.schedule.seconds * 1000;
      return reference + (Math.floor((after - reference) / step) + 1) * step;
    }
    for (let t = floorMinute(after) + MINUTE_MS; t <= after + YEAR_MS; t += MINUTE_MS)
      if (this.matches(t)) return t;
    return undefined;
  }

  private matches(utcMs: number): boolean {
    const s = this.schedule;
    if (s.kind !== 'fields') return false;
    const wall = new Date(utcMs + this.offsetAt(utcMs));
    if (!s.minute.has(wall.getUTCMinutes()) || !s.hour.has(wall.getUTCHours())) return false;
    if (!s.month.has(wall.getUTCMonth() + 1)) return false;
    const domStar = s.dayOfMonth.size === 31;
    const dowStar = s.dayOfWeek.size === 7;
    const dom = s.dayOfMonth.has(wall.getUTCDate());
    const dow = s.dayOfWeek.has(wall.getUTCDay()) || (wall.getUTCDay() === 0 && s.dayOfWeek.has(7));
    return domStar || dowStar ? dom && dow : dom || dow;
  }

  /** The zone's offset from UTC in ms at `utcMs`, looked up once per UTC hour. */
  private offsetAt(utcMs: number): number {
    const hour = Math.floor(utcMs / HOUR_MS) * HOUR_MS;
    let offset = this.offsets.get(hour);
    if (offset === undefined) {
      const parts = Object.fromEntries(
        this.format.formatToParts(new Date(hour)).map((p) => [p.type, p.value]),
      );
      const wall = Date.UTC(
        Number(parts.year),
        Number(parts.month) - 1,
        Number(parts.day),
        Number(parts.hour),
        Number(parts.minute),
      );
      offset = wall - hour;
      this.offsets.set(hour, offset);
    }
    return offset;
  }
}

function floorMinute(ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS;
}
