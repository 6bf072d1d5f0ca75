/**
 * The `skiff` command tree, built for one command line. A verb's module is loaded only when the
 * command line names it: `skiff version --client` never loads gRPC, and `skiff get` never loads the
 * control plane or the runtime. Help, no verb and an unknown verb load them all, so help lists
 * every command and a typo gets commander's suggestion.
 */
import { Command } from 'commander';
import { packageVersion } from '../proto/package-info.js';
import { registerGlobalOptions } from './commands/context.js';

type Registrar = (program: Command) => void;

/** Every top-level command and how to load its registration, in the order help lists them. */
export const VERBS: Readonly<Record<string, () => Promise<Registrar>>> = {
  version: async () => (await import('./commands/version.js')).registerVersion,
  create: async () => (await import('./commands/create.js')).registerCreate,
  expose: async () => (await import('./commands/create.js')).registerExpose,
  apply: async () => (await import('./commands/apply.js')).registerApply,
  get: async () => (await import('./commands/get.js')).registerGet,
  describe: async () => (await import('./commands/describe.js')).registerDescribe,
  edit: async () => (await import('./commands/edit.js')).registerEdit,
  patch: async () => (await import('./commands/patch.js')).registerPatch,
  label: async () => (await import('./commands/label.js')).registerLabel,
  annotate: async () => (await import('./commands/label.js')).registerAnnotate,
  diff: async () => (await import('./commands/diff.js')).registerDiff,
  delete: async () => (await import('./commands/delete.js')).registerDelete,
  scale: async () => (await import('./commands/rollout.js')).registerScale,
  set: async () => (await import('./commands/rollout.js')).registerSet,
  rollout: async () => (await import('./commands/rollout.js')).registerRollout,
  wait: async () => (await import('./commands/wait.js')).registerWait,
  secrets: async () => (await import('./commands/secrets.js')).registerSecrets,
  'api-resources': async () => (await import('./commands/api-resources.js')).registerApiResources,
  config: async () => (await import('./commands/config.js')).registerConfig,
  'cluster-info': async () => (await import('./commands/config.js')).registerClusterInfo,
  up: async () => (await import('./commands/up.js')).registerUp,
  down: async () => (await import('./commands/up.js')).registerDown,
  controlplane: async () => (await import('./commands/controlplane.js')).registerControlPlane,
  agent: async () => (await import('./commands/agent.js')).registerAgent,
  runtime: async () => (await import('./commands/runtime.js')).registerRuntime,
  image: async () => (await import('./commands/image.js')).registerImage,
  registry: async () => (await import('./commands/registry.js')).registerRegistry,
  token: async () => (await import('./commands/token.js')).registerToken,
  cordon: async () => (await import('./commands/cordon.js')).registerCordon,
  uncordon: async () => (await import('./commands/cordon.js')).registerUncordon,
  drain: async () => (await import('./commands/drain.js')).registerDrain,
  logs: async () => (await import('./commands/logs.js')).registerLogs,
  exec: async () => (await import('./commands/exec.js')).registerExec,
  attach: async () => (await import('./commands/exec.js')).registerAttach,
  'port-forward': async () => (await import('./commands/port-forward.js')).registerPortForward,
};

/** The program with the global options and the commands `args` (argv after the script) need. */
export async function buildProgram(args: readonly string[]): Promise<Command> {
  const program = new Command('skiff')
    .description('skiff: a Kubernetes-style cluster orchestrator with its own container runtime')
    .version(packageVersion(), '--version')
    .showHelpAfterError()
    .exitOverride();
  registerGlobalOptions(program);
  const verb = verbOf(program, args);
  const wanted = verb !== undefined && Object.hasOwn(VERBS, verb) ? [verb] : Object.keys(VERBS);
  const registrars = await Promise.all(wanted.map((name) => VERBS[name]!()));
  for (const register of registrars) register(program);
  return program;
}

/** The first word that is neither a global option nor its value: the verb commander will run. */
export function verbOf(program: Command, args: readonly string[]): string | undefined {
  const takesValue = new Set<string>();
  for (const option of program.options) {
    if (!option.required && !option.optional) continue;
    if (option.long) takesValue.add(option.long);
    if (option.short) takesValue.add(option.short);
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return undefined;
    if (!arg.startsWith('-')) return arg;
    if (takesValue.has(arg)) i++;
  }
  return undefined;
}
