/**
 * Cron schedules as a CronJob takes them (Kubernetes reads them with robfig/cron's standard
 * parser): five fields — minute, hour, day of month, month, day of week — each `*`, `?` (the two
 * day fields), a value, a range `a-b`, a step `*\/n`, `a-b/n` or `a/n`, or a comma list of these;
 * month and weekday names (JAN, MON) in any case; or a macro (@yearly, @annually, @monthly,
 * @weekly, @daily, @midnight, @hourly, @every DURATION).
 */

interface CronField {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const FIELDS: readonly CronField[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'],
  },
  { name: 'day of week', min: 0, max: 6, names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] },
];

const MACROS: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** A schedule as the sets of values each field allows, or a fixed interval (@every). */
export type CronSchedule =
  | {
      kind: 'fields';
      minute: Set<number>;
      hour: Set<number>;
      dayOfMonth: Set<number>;
      month: Set<number>;
      dayOfWeek: Set<number>;
    }
  | { kind: 'every'; seconds: number };

/** Thrown by parseCronSchedule with what is wrong, to follow the quoted schedule. */
export class CronScheduleError extends Error {}

function value(text: string, field: CronField): number {
  const named = field.names?.indexOf(text.toUpperCase()) ?? -1;
  if (named !== -1) return named + field.min;
  if (!/^\d+$/.test(text))
    throw new CronScheduleError(`${field.name}: "${text}" is not a number${field.names ? ' or a name' : ''}`);
  const n = Number(text);
  if (n < field.min || n > field.max) {
    throw new CronScheduleError(`${field.name}: ${n} is out of range ${field.min}-${field.max}`);
  }
  return n;
}

function parseField(text: string, field: CronField): Set<number> {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const [range = '', stepText, extra] = part.split('/');
    if (extra !== undefined || range === '')
      throw new CronScheduleError(`${field.name}: "${part}" is malformed`);
    let low: number;
    let high: number;
    if (range === '*' || (range === '?' && field.name.startsWith('day'))) {
      low = field.min;
      high = field.max;
    } else if (range.includes('-')) {
      const [a = '', b = '', more] = range.split('-');
      if (more !== undefined) throw new CronScheduleError(`${field.name}: "${range}" is malformed`);
      low = value(a, field);
      high = value(b, field);
      if (low > high) throw new CronScheduleError(`${field.name}: range "${range}" runs backwards`);
    } else {
      low = value(range, field);
      // "a/n" means from a to the end in steps of n.
      high = stepText === undefined ? low : field.max;
    }
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) {
        throw new CronScheduleError(`${field.name}: step "${stepText}" must be a whole number above 0`);
      }
      step = Number(stepText);
    }
    for (let n = low; n <= high; n += step) values.add(n);
  }
  return values;
}

const DURATION = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/** The schedule; throws CronScheduleError saying what is wrong. */
export function parseCronSchedule(schedule: string): CronSchedule {
  const text = schedule.trim();
  if (text.startsWith('@every ')) {
    const match = DURATION.exec(text.slice('@every '.length).trim());
    const seconds = match
      ? Number(match[1] ?? 0) * 3600 + Number(match[2] ?? 0) * 60 + Number(match[3] ?? 0)
      : 0;
    if (!match || seconds === 0)
      throw new CronScheduleError('@every takes a duration above zero such as 90s, 5m or 1h30m');
    return { kind: 'every', seconds };
  }
  const expanded = MACROS[text.toLowerCase()] ?? text;
  if (expanded.startsWith('@')) {
    throw new CronScheduleError(
      `unknown macro; use one of ${Object.keys(MACROS).join(', ')} or @every DURATION`,
    );
  }
  const parts = expanded.split(/\s+/);
  if (parts.length !== 5) {
    throw new CronScheduleError(
      `has ${parts.length} field${parts.length === 1 ? '' : 's'}; a schedule has five: minute hour day-of-month month day-of-week (e.g. "0 3 * * 1-5")`,
    );
  }
  const [minute, hour, dayOfMonth, month, dayOfWeek] = parts.map((part, i) => parseField(part, FIELDS[i]!));
  return {
    kind: 'fields',
    minute: minute!,
    hour: hour!,
    dayOfMonth: dayOfMonth!,
    month: month!,
    dayOfWeek: dayOfWeek!,
  };
}

/** What is wrong with `schedule`, or undefined when it is a valid schedule. */
export function cronScheduleProblem(schedule: string): string | undefined {
  if (schedule.trim() === '') return 'is empty: a schedule is required, e.g. "*/5 * * * *" or "@hourly"';
  try {
    parseCronSchedule(schedule);
    return undefined;
  } catch (err) {
    if (err instanceof CronScheduleError) return `is not a valid schedule: ${err.message}`;
    throw err;
  }
}
