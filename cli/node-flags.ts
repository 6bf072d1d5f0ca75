/**
 * Node.js and V8 settings a verb runs with, given on Node's command line: V8 reads them when it
 * starts, so a process that wants them and was started without them replaces itself (execve: the
 * same pid, one process, nothing else started) with one that has them.
 */

/** The option's name: `--max-semi-space-size=1` → `max-semi-space-size`, `--no-opt` → `opt`. */
function flagName(flag: string): string {
  return flag.replace(/^--/, '').replace(/=.*$/, '').replace(/^no-/, '').replaceAll('_', '-');
}

/** The flags of `wanted` whose option `execArgv` does not set either way (what is given wins). */
export function missingNodeFlags(execArgv: readonly string[], wanted: readonly string[]): string[] {
  const given = new Set(execArgv.filter((a) => a.startsWith('--')).map(flagName));
  return wanted.filter((flag) => !given.has(flagName(flag)));
}

/**
 * Replaces this process with the same command under `flags` too, unless it already runs with them
 * (then it returns); options set on node's command line or in NODE_OPTIONS are kept as set. Where
 * the Node.js has no process.execve, the process goes on as it is.
 */
export function relaunchWithNodeFlags(flags: readonly string[]): void {
  const nodeOptions = (process.env['NODE_OPTIONS'] ?? '').split(/\s+/).filter(Boolean);
  const missing = missingNodeFlags([...process.execArgv, ...nodeOptions], flags);
  if (missing.length === 0 || typeof process.execve !== 'function') return;
  process.execve(
    process.execPath,
    [process.execPath, ...process.execArgv, ...missing, ...process.argv.slice(1)],
    process.env,
  );
}
