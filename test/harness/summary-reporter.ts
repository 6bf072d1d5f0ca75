/**
 * A node:test reporter for run-suite.sh, used beside the spec reporter: it writes the run's summary
 * (the counts spec prints at the end) as one JSON line, so the script can add up the runs of its
 * groups of test files and print one total for the whole suite.
 *
 *   node --test --test-reporter=spec --test-reporter-destination=stdout \
 *     --test-reporter=./dist/test/harness/summary-reporter.js --test-reporter-destination=FILE …
 */
import type { TestEvent } from 'node:test/reporters';

export default async function* summaryReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  for await (const event of source) {
    // the run's own summary has no file; a file's (in-process runs only) names it
    if (event.type === 'test:summary' && event.data.file === undefined) {
      yield `${JSON.stringify({ ...event.data.counts, success: event.data.success, durationMs: event.data.duration_ms })}\n`;
    }
  }
}
