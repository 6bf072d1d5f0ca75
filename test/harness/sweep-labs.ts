/**
 * Removes the multi-host labs (test/harness/hosts.ts) whose test process died without disposing of
 * them: their namespaces, veth, processes, cgroups, mounts and directories. run-suite.sh runs it
 * as a last resort when the suite ends; labs whose test process still runs are left alone.
 *
 *   node dist/test/harness/sweep-labs.js
 *
 * Exits 1 naming what it could not remove.
 */
import { sweepAbandonedLabs } from './hosts.js';

const problems = await sweepAbandonedLabs();
for (const problem of problems) console.error(`sweep-labs: ${problem}`);
process.exitCode = problems.length > 0 ? 1 : 0;
