/**
 * `skiff exec [-i] [-t] POD [-c C] -- CMD…` and `skiff attach [-i] [-t] POD [-c C]`, as kubectl's:
 * through the control plane to the agent of the pod's node (pod streams). exec's exit code is the
 * process's; -t gives a terminal of the container's own, sized and resized as this window is;
 * without a name, the container is the pod's only one or its default-container annotation's.
 */
import type { Command } from 'commander';
import type { PodStreamOpen } from '../../proto/pod-streams.js';
import { InvalidArgumentError } from '../../proto/errors.js';
import { podName, relayPodStream } from '../pod-stream-relay.js';
import { stdinIsTerminal, terminalSize } from '../terminal.js';
import { DEFAULT_NAMESPACE, withClient } from './context.js';

interface Flags {
  stdin?: boolean;
  tty?: boolean;
  container?: string;
  namespace?: string;
  quiet?: boolean;
}

/** -t as kubectl takes it: a terminal only when input comes from one (else a warning, and pipes). */
function useTerminal(flags: Flags): boolean {
  if (!flags.tty) return false;
  if (flags.stdin && !stdinIsTerminal()) {
    if (!flags.quiet)
      process.stderr.write('Unable to use a TTY - input is not a terminal or the right kind of file\n');
    return false;
  }
  return true;
}

async function run(
  cmd: Command,
  verb: 'exec' | 'attach',
  pod: string,
  flags: Flags,
  command: string[],
): Promise<void> {
  const tty = useTerminal(flags);
  const size = tty ? terminalSize() : undefined;
  const open: PodStreamOpen = {
    namespace: flags.namespace || DEFAULT_NAMESPACE,
    name: podName(pod, verb),
    ...(flags.container ? { container: flags.container } : {}),
    ...(command.length ? { command } : {}),
    stdin: flags.stdin === true,
    tty,
    ...(size ? { terminalSize: size } : {}),
  };
  await withClient(cmd, async (api) => {
    const stream = api.podStream(verb === 'exec' ? 'Exec' : 'Attach', open);
    if (verb === 'attach' && tty && flags.stdin && !flags.quiet)
      process.stderr.write("If you don't see a command prompt, try pressing enter.\n");
    process.exitCode = await relayPodStream(stream, {
      ...(flags.stdin ? { stdin: process.stdin } : {}),
      stdout: process.stdout,
      stderr: process.stderr,
      tty: tty && flags.stdin === true,
    });
  });
}

function common(command: Command): Command {
  return command
    .option('-i, --stdin', 'pass stdin to the process')
    .option(
      '-t, --tty',
      "a terminal of the container's own (with -i from a terminal: raw mode, resized with the window)",
    )
    .option(
      '-c, --container <name>',
      "the container (default: the pod's only one, or its default-container annotation)",
    )
    .option('-n, --namespace <ns>', 'namespace (default: default)')
    .option('-q, --quiet', 'print nothing but what the process does');
}

export function registerExec(program: Command): void {
  common(
    program
      .command('exec')
      .description('run a command in a container of a pod; its exit code is the CLI’s')
      .argument('<pod>', 'NAME or pod/NAME')
      .argument('<command...>', 'after --: the command and its arguments'),
  ).action(async (pod: string, command: string[], flags: Flags, cmd: Command) => {
    // commander takes options anywhere before "--" (exec POD -c C -- CMD) and none after it
    const argv = command[0] === '--' ? command.slice(1) : command;
    if (argv.length === 0)
      throw new InvalidArgumentError('exec: give the command after -- (skiff exec POD -- CMD)', 'command');
    await run(cmd, 'exec', pod, flags, argv);
  });
}

export function registerAttach(program: Command): void {
  common(
    program
      .command('attach')
      .description(
        'attach to the main process of a container: its output from now on, and its stdin (stdin: true) with -i',
      )
      .argument('<pod>', 'NAME or pod/NAME'),
  ).action(async (pod: string, flags: Flags, cmd: Command) => {
    await run(cmd, 'attach', pod, flags, []);
  });
}
