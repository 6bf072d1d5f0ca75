/**
 * Adds up the summaries summary-reporter.ts wrote for run-suite.sh's groups of test files and
 * prints the total for the whole suite. Exits 1 when a group left no summary (its runner died
 * before the end) or reported a failure, so the total can never look green when a group was not.
 *
 *   node dist/test/harness/suite-summary.js GROUP-NAME=SUMMARY-FILE…
 */
import { readFileSync } from 'node:fs';

const COUNTS = ['tests', 'suites', 'passed', 'failed', 'cancelled', 'skipped', 'todo'] as const;
type Counts = Record<(typeof COUNTS)[number], number>;

const total: Counts = { tests: 0, suites: 0, passed: 0, failed: 0, cancelled: 0, skipped: 0, todo: 0 };
const problems: string[] = [];
for (const argument of process.argv.slice(2)) {
  const at = argument.indexOf('=');
  const [group, file] = [argument.slice(0, at), argument.slice(at + 1)];
  let lines: string[];
  try {
    lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    lines = [];
  }
  if (lines.length === 0) {
    problems.push(`the ${group} group reported no summary (its test runner did not finish)`);
    continue;
  }
  for (const line of lines) {
    const summary = JSON.parse(line) as Counts & { success: boolean };
    for (const key of COUNTS) total[key] += summary[key];
    if (!summary.success) problems.push(`the ${group} group failed`);
  }
}
const line = (label: string, value: number) => `run-suite: ${label.padEnd(9)} ${value}`;
console.log(
  [
    'run-suite: the whole suite, every group together:',
    line('tests', total.tests),
    line('suites', total.suites),
    line('pass', total.passed),
    line('fail', total.failed),
    line('cancelled', total.cancelled),
    line('skipped', total.skipped),
    line('todo', total.todo),
  ].join('\n'),
);
for (const problem of problems) console.error(`run-suite: ${problem}`);
process.exitCode = problems.length > 0 ? 1 : 0;
