/**
 * `skiff logs [-f] [-p] [--tail N] [--since 5m | --since-time T] [--timestamps] [--limit-bytes N]
 * [-c C] [-n NS] POD`, as kubectl's: a container's log through the control plane from the agent of
 * the pod's node. `-f` follows new lines (across the log's rotation) and ends when the container
 * does; `-p` is the container's previous attempt (before its last restart); a pod with init
 * containers takes `-c` to read one.
 */
import { InvalidArgumentError as InvalidOptionValue, type Command } from 'commander';
import type { PodLogsOptions } from '../../proto/pod-streams.js';
import { podName } from '../pod-stream-relay.js';
import { DEFAULT_NAMESPACE, parseDurationOption, withClient } from './context.js';

interface Flags {
  follow?: boolean;
  previous?: boolean;
  tail: number;
  since?: number;
  sinceTime?: string;
  timestamps?: boolean;
  limitBytes?: number;
  container?: string;
  namespace?: string;
}

/** --tail: lines, or -1 for all (kubectl's default). */
function parseTail(value: string): number {
  if (!/^-?\d+$/.test(value) || Number(value) < -1)
    throw new InvalidOptionValue(`--tail must be a number of lines (-1: all), got "${value}"`);
  return Number(value);
}

function parsePositive(flag: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) <= 0)
      throw new InvalidOptionValue(`${flag} must be a positive number, got "${value}"`);
    return Number(value);
  };
}

export function registerLogs(program: Command): void {
  program
    .command('logs')
    .description("print a container's log")
    .argument('<pod>', 'NAME or pod/NAME')
    .option('-f, --follow', 'go on printing new lines until the container ends')
    .option('-p, --previous', "the container's previous attempt (before its last restart)")
    .option('--tail <lines>', 'only the last N lines (-1: all)', parseTail, -1)
    .option('--since <duration>', 'only lines newer than this: 10s, 5m, 2h', parseDurationOption('--since'))
    .option('--since-time <time>', 'only lines from this RFC 3339 time on')
    .option('--timestamps', 'each line starts with its RFC 3339 time')
    .option('--limit-bytes <bytes>', 'stop after this many bytes', parsePositive('--limit-bytes'))
    .option(
      '-c, --container <name>',
      "the container (default: the pod's only one, or its default-container annotation)",
    )
    .option('-n, --namespace <ns>', 'namespace (default: default)')
    .action(async (pod: string, flags: Flags, cmd: Command) => {
      if (flags.since !== undefined && flags.sinceTime !== undefined)
        throw new InvalidOptionValue('logs: give --since or --since-time, not both');
      if (flags.sinceTime !== undefined && Number.isNaN(Date.parse(flags.sinceTime)))
        throw new InvalidOptionValue(`--since-time must be an RFC 3339 time, got "${flags.sinceTime}"`);
      const options: PodLogsOptions = {
        namespace: flags.namespace || DEFAULT_NAMESPACE,
        name: podName(pod, 'logs'),
        ...(flags.container ? { container: flags.container } : {}),
        ...(flags.follow ? { follow: true } : {}),
        ...(flags.previous ? { previous: true } : {}),
        ...(flags.tail >= 0 ? { tailLines: flags.tail } : {}),
        ...(flags.since !== undefined ? { sinceSeconds: Math.max(1, Math.ceil(flags.since / 1000)) } : {}),
        ...(flags.sinceTime ? { sinceTime: flags.sinceTime } : {}),
        ...(flags.timestamps ? { timestamps: true } : {}),
        ...(flags.limitBytes ? { limitBytes: flags.limitBytes } : {}),
      };
      const abort = new AbortController();
      const stop = (): void => abort.abort();
      process.once('SIGINT', stop);
      // a reader that went away (| head): stop quietly
      process.stdout.on('error', stop);
      try {
        await withClient(cmd, async (api) => {
          for await (const chunk of api.logs(options, abort.signal)) {
            if (!process.stdout.write(chunk))
              await new Promise<void>((resolve) => {
                process.stdout.once('drain', resolve);
                abort.signal.addEventListener('abort', () => resolve(), { once: true });
              });
            if (abort.signal.aborted) break;
          }
        });
      } finally {
        process.off('SIGINT', stop);
      }
    });
}
