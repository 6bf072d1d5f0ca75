/**
 * `skiff agent`: runs a node agent on this host (as root): it registers the node with the control
 * plane at --server, runs the pods bound to it with the embedded runtime, and reports them through
 * NATS. Runs until SIGTERM or SIGINT; the containers keep running and the next agent adopts them.
 * With --hollow: registers --count hollow nodes (<prefix>-0000 …) that run nothing and report their
 * pods Running (node-agent/hollow/), from one process, without root.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../proto/errors.js';
import { milliValue, parseQuantity, wholeValue } from '../../proto/quantity.js';
import type { Taint } from '../../proto/gen/types.js';
import { componentLogger } from '../../proto/support/logger.js';
import { DEFAULT_ROOT } from '../../node-agent/runtime/image-side.js';
import { relaunchWithNodeFlags } from '../node-flags.js';
import { globalOptions, parseDurationOption, readCertificateAuthority } from './context.js';

/**
 * The agent runs on every node beside the pods, so it trades speed it does not need for memory
 * (issue 11: under 80 MB): a young generation of 1 MiB semi-spaces instead of up to 16 (the agent
 * allocates little and keeps what the default lets grow after a burst of pods), and only V8's
 * interpreter (no Sparkplug, Maglev or TurboFan code, nor the memory they take; `--lite-mode`
 * without its `--jitless`, which would take WebAssembly away). Measured with 30 pods after 100
 * started and deleted: RSS 126 MB → 80 MB, CPU at idle 0.1 % of a core either way.
 */
export const AGENT_NODE_FLAGS = [
  '--max-semi-space-size=1',
  '--no-opt',
  '--no-maglev',
  '--no-sparkplug',
  '--optimize-for-size',
];

interface AgentFlags {
  tokenFile?: string;
  nodeName: string;
  labels?: string;
  taints?: string;
  root: string;
  nats?: string;
  nodeIp?: string;
  allowHostPath: string[];
  allowPrivileged?: boolean;
  hostNetns?: string;
  dnsUpstream?: string;
  cgroupParent?: string;
  nodeStatusUpdateFrequency?: number;
  hollow?: boolean;
  count?: string;
  nodeNamePrefix?: string;
  cpu?: string;
  memory?: string;
  pods?: string;
  zones?: string;
}

const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'];

/** `k=v,k2=v2` (a value may be empty: `k=`). */
export function parseLabelList(text: string, flag: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const at = item.indexOf('=');
    if (at <= 0)
      throw new InvalidArgumentError(`${flag}: "${item}" is not key=value`, flag.replace(/^-+/, ''));
    labels[item.slice(0, at)] = item.slice(at + 1);
  }
  return labels;
}

/** `key=value:Effect` or `key:Effect`, comma-separated (as the kubelet's --register-with-taints). */
export function parseTaintList(text: string, flag: string): Taint[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => {
      const m = /^([^=:]+)(?:=([^:]*))?:(.+)$/.exec(item);
      if (!m || !TAINT_EFFECTS.includes(m[3]!))
        throw new InvalidArgumentError(
          `${flag}: "${item}" is not key[=value]:Effect with Effect one of ${TAINT_EFFECTS.join(', ')}`,
          flag.replace(/^-+/, ''),
        );
      return { key: m[1]!, ...(m[2] ? { value: m[2] } : {}), effect: m[3]! };
    });
}

async function readTokenFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(
      `agent: read --token-file ${path}: ${(err as Error).message}`,
      'token-file',
    );
  }
  if (text.trim() === '')
    throw new InvalidArgumentError(`agent: --token-file ${path} is empty`, 'token-file');
  return text.trim();
}

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('run a node agent: join the cluster at --server and run the pods bound to this node')
    .option('--token-file <file>', 'read the API token from this file (kept off the command line)')
    .option('--node-name <name>', 'name of this node', hostname().toLowerCase())
    .option('--labels <k=v,...>', 'labels added to the node')
    .option('--taints <k=v:Effect,...>', 'taints the node is registered with')
    .option('--root <dir>', 'runtime root (images, containers, pod files)', DEFAULT_ROOT)
    .option('--nats <url>', 'NATS URL to report to (default: the one the control plane names)')
    .option('--node-ip <ip>', "the node's InternalIP (default: the first non-loopback IPv4 address)")
    .option(
      '--host-netns <path>',
      "program the node's pod network in this network namespace (/run/netns/NAME) instead of the agent's own",
    )
    .option(
      '--dns-upstream <address[:port],...>',
      "where the node's cluster DNS forwards names outside the cluster (default: the nameservers of /etc/resolv.conf)",
    )
    .option(
      '--node-status-update-frequency <duration>',
      "how often the node's heartbeat is sent (default 10s; the control plane's --node-monitor-grace-period must be several times it)",
      parseDurationOption('--node-status-update-frequency'),
    )
    .option(
      '--cgroup-parent <path>',
      "cgroup of the node's containers, below each hierarchy's root (default skiff): agents sharing a machine each take their own",
    )
    .option(
      '--allow-host-path <prefix>',
      'a host path prefix hostPath volumes may use (repeatable; none: hostPath volumes are refused)',
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .option(
      '--allow-privileged',
      'let pods run privileged containers (every capability, no seccomp filter); refused otherwise',
    )
    .option('--hollow', 'run hollow nodes (kubemark-style): register --count nodes that run nothing')
    .option('--count <n>', 'hollow nodes to register (with --hollow)', '1')
    .option('--node-name-prefix <prefix>', 'the hollow nodes are <prefix>-0000 … (with --hollow)', 'hollow')
    .option('--cpu <quantity>', "each hollow node's cpu capacity (with --hollow)", '4')
    .option('--memory <quantity>', "each hollow node's memory capacity (with --hollow)", '16Gi')
    .option('--pods <n>', 'pods each hollow node takes (with --hollow)', '110')
    .option('--zones <n>', 'spread hollow nodes over zones zone-0 … (topology.kubernetes.io/zone)')
    .action(async (flags: AgentFlags, command: Command) => {
      // --server and --token are the global options every verb takes; an agent needs them given
      const globals = globalOptions(command);
      if (!globals.server)
        throw new InvalidArgumentError(
          "agent: give --server, the control plane's API address (host:port; with several control planes, each, comma-separated)",
          'server',
        );
      if (flags.hollow)
        return runHollow(flags, globals.server, await agentToken(flags, globals.token), command);
      if (process.getuid?.() !== 0) {
        throw new InvalidArgumentError(
          'agent: run as root (it creates namespaces, mounts and cgroups)',
          'agent',
        );
      }
      relaunchWithNodeFlags(AGENT_NODE_FLAGS);
      const token = await agentToken(flags, globals.token);
      const log = componentLogger('agent', { node: flags.nodeName });
      const { startAgent, parseUpstreams } = await import('../../node-agent/agent/main.js');
      const dnsUpstreams = flags.dnsUpstream !== undefined ? parseUpstreams(flags.dnsUpstream) : undefined;
      const running = await startAgent({
        server: globals.server,
        ...(globals.certificateAuthority
          ? { ca: readCertificateAuthority(globals.certificateAuthority) }
          : {}),
        token,
        nodeName: flags.nodeName,
        root: flags.root,
        ...(flags.nats ? { natsUrl: flags.nats } : {}),
        ...(flags.nodeIp ? { nodeIP: flags.nodeIp } : {}),
        ...(flags.labels ? { labels: parseLabelList(flags.labels, '--labels') } : {}),
        ...(flags.taints ? { taints: parseTaintList(flags.taints, '--taints') } : {}),
        allowedHostPaths: flags.allowHostPath,
        ...(flags.allowPrivileged ? { allowPrivileged: true } : {}),
        ...(flags.hostNetns ? { hostNetns: flags.hostNetns } : {}),
        ...(dnsUpstreams ? { dnsUpstreams } : {}),
        ...(flags.cgroupParent !== undefined ? { cgroupParent: flags.cgroupParent } : {}),
        ...(flags.nodeStatusUpdateFrequency ? { heartbeatMs: flags.nodeStatusUpdateFrequency } : {}),
        log,
      });
      await untilSignal((signal) => log.info({ signal }, 'stopping agent; containers keep running'));
      await running.stop();
    });
}

async function agentToken(flags: AgentFlags, given: string | undefined): Promise<string> {
  const token = flags.tokenFile ? await readTokenFile(flags.tokenFile) : (given ?? process.env.SKIFF_TOKEN);
  if (!token)
    throw new InvalidArgumentError('agent: give --token or --token-file (or set SKIFF_TOKEN)', 'token');
  return token;
}

/** Resolves at the first SIGTERM or SIGINT. */
function untilSignal(onSignal: (signal: NodeJS.Signals) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const handler = (signal: NodeJS.Signals): void => {
      onSignal(signal);
      process.off('SIGTERM', handler);
      process.off('SIGINT', handler);
      resolve();
    };
    process.on('SIGTERM', handler);
    process.on('SIGINT', handler);
  });
}

/** A whole number ≥ `min` from flag `flag`, or a clear error naming it. */
function wholeFlag(text: string, flag: string, min: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min)
    throw new InvalidArgumentError(
      `agent: ${flag} must be a whole number ≥ ${min}, not "${text}"`,
      flag.slice(2),
    );
  return value;
}

function quantityFlag(text: string, flag: string): ReturnType<typeof parseQuantity> {
  try {
    return parseQuantity(text, flag.slice(2));
  } catch (err) {
    throw new InvalidArgumentError(
      `agent: ${flag} "${text}" is not a quantity (4, 500m, 16Gi)`,
      flag.slice(2),
      {
        cause: err,
      },
    );
  }
}

/** `skiff agent --hollow`: the hollow nodes run until SIGTERM or SIGINT. */
async function runHollow(flags: AgentFlags, server: string, token: string, command: Command): Promise<void> {
  const globals = globalOptions(command);
  const group = flags.nodeNamePrefix ?? 'hollow';
  const capacity = {
    cpus: milliValue(quantityFlag(flags.cpu ?? '4', '--cpu')) / 1000,
    memoryBytes: wholeValue(quantityFlag(flags.memory ?? '16Gi', '--memory')),
    pods: wholeFlag(flags.pods ?? '110', '--pods', 1),
  };
  const count = wholeFlag(flags.count ?? '1', '--count', 1);
  const zones = flags.zones !== undefined ? wholeFlag(flags.zones, '--zones', 1) : undefined;
  const log = componentLogger('agent', { nodeGroup: group });
  const { startHollowNodes } = await import('../../node-agent/hollow/main.js');
  const running = await startHollowNodes({
    server,
    token,
    ...(globals.certificateAuthority ? { ca: readCertificateAuthority(globals.certificateAuthority) } : {}),
    group,
    count,
    capacity,
    root: flags.root,
    ...(zones !== undefined ? { zones } : {}),
    ...(flags.nats ? { natsUrl: flags.nats } : {}),
    ...(flags.nodeIp ? { nodeIP: flags.nodeIp } : {}),
    ...(flags.labels ? { labels: parseLabelList(flags.labels, '--labels') } : {}),
    ...(flags.taints ? { taints: parseTaintList(flags.taints, '--taints') } : {}),
    ...(flags.nodeStatusUpdateFrequency ? { heartbeatMs: flags.nodeStatusUpdateFrequency } : {}),
    log,
  });
  await untilSignal((signal) => log.info({ signal }, 'stopping hollow nodes'));
  await running.stop();
}
