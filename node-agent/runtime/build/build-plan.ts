/**
 * What a parsed Dockerfile asks for, one stage at a time, with Docker's scoping of variables:
 *
 *   ARG before the first FROM     global: visible in FROM lines only, and inside a stage once it
 *                                 is declared again there without a value (`ARG NAME`)
 *   ARG in a stage                visible from its line to the stage's end; `--build-arg`
 *                                 overrides its default; passed to RUN as environment
 *   ENV                           visible from its line on, in the image, and wins over an ARG
 *
 * Pure: `StageEvaluator.apply` turns an instruction into the change of the image config it makes,
 * or into a step that needs the file system (RUN, COPY/ADD, WORKDIR), for image-builder.ts.
 */
import { InvalidArgumentError } from '../../../proto/errors.js';
import {
  dockerfileError,
  jsonForm,
  keyValues,
  parseDuration,
  substitute,
  substituteWords,
  type Instruction,
  type ParsedDockerfile,
} from './dockerfile.js';
import { cleanRelative } from './dockerignore.js';

export interface Stage {
  index: number;
  /** `AS name`, lower-cased as Docker compares it. */
  name?: string;
  /** The base: an image reference, `scratch`, or an earlier stage's index. */
  base: { image: string } | { scratch: true } | { stage: number };
  fromLine: number;
  fromText: string;
  /** `FROM --platform=…`, substituted. */
  platform?: string;
  instructions: Instruction[];
}

export interface BuildPlan {
  escape: string;
  stages: Stage[];
  /** The stage whose result is the image (`--target`, else the last). */
  target: number;
  /** The stages the target needs, in build order. */
  order: number[];
  /** Global ARGs (before the first FROM) with their values. */
  globalArgs: Map<string, string | undefined>;
  buildArgs: ReadonlyMap<string, string>;
  /** `--build-arg`s no ARG declares (Docker warns about them). */
  unusedBuildArgs: string[];
}

/** Splits the Dockerfile into stages and picks those `target` needs. */
export function planBuild(
  parsed: ParsedDockerfile,
  buildArgs: ReadonlyMap<string, string>,
  target?: string,
  platform: { os: string; architecture: string } = { os: 'linux', architecture: 'amd64' },
): BuildPlan {
  const escape = parsed.escape;
  // BuildKit's automatic platform ARGs, for FROM lines and stages that declare them; the build
  // is for this machine, so build and target are the same
  const globalArgs = new Map<string, string | undefined>();
  for (const prefix of ['BUILD', 'TARGET']) {
    globalArgs.set(`${prefix}PLATFORM`, `${platform.os}/${platform.architecture}`);
    globalArgs.set(`${prefix}OS`, platform.os);
    globalArgs.set(`${prefix}ARCH`, platform.architecture);
  }
  const declared = new Set<string>();
  const stages: Stage[] = [];
  for (const ins of parsed.instructions) {
    if (ins.keyword === 'FROM') {
      const words = substituteWords(ins.args, defined(globalArgs), escape, ins.line);
      let name: string | undefined;
      if (words.length === 3 && words[1]!.toUpperCase() === 'AS') {
        name = words[2]!.toLowerCase();
        if (!/^[a-z][a-z0-9_.-]*$/.test(name))
          throw dockerfileError(ins.line, `invalid stage name ${JSON.stringify(words[2])}`);
        if (stages.some((s) => s.name === name))
          throw dockerfileError(ins.line, `the stage name ${JSON.stringify(name)} is used twice`);
      } else if (words.length !== 1) {
        throw dockerfileError(ins.line, 'FROM takes an image and an optional `AS name`');
      }
      const ref = words[0]!;
      if (ref === '') throw dockerfileError(ins.line, 'FROM names no image (an empty variable?)');
      const earlier = stages.find((s) => s.name === ref.toLowerCase());
      const base: Stage['base'] =
        earlier !== undefined
          ? { stage: earlier.index }
          : ref.toLowerCase() === 'scratch'
            ? { scratch: true }
            : { image: ref };
      const stage: Stage = {
        index: stages.length,
        name,
        base,
        fromLine: ins.line,
        fromText: ins.text,
        instructions: [],
      };
      const wanted = ins.flags.get('platform');
      if (wanted !== undefined) stage.platform = substitute(wanted, defined(globalArgs), escape, ins.line);
      stages.push(stage);
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) {
      if (ins.keyword !== 'ARG')
        throw dockerfileError(ins.line, `${ins.keyword} before the first FROM (only ARG may come before it)`);
      for (const { key, value } of keyValues(ins.args, defined(globalArgs), escape, ins.line, 'ARG', false)) {
        declared.add(key);
        globalArgs.set(key, buildArgs.get(key) ?? value);
      }
      continue;
    }
    if (ins.keyword === 'ARG') for (const w of ins.args.split(/\s+/)) declared.add(w.split('=')[0]!);
    stage.instructions.push(ins);
  }
  if (stages.length === 0)
    throw dockerfileError(1, 'no FROM instruction: a Dockerfile starts with FROM (or ARG)');
  let targetIndex = stages.length - 1;
  if (target !== undefined) {
    const found = stages.find((s) => s.name === target.toLowerCase());
    if (!found) {
      const names = stages.flatMap((s) => (s.name ? [s.name] : []));
      throw new InvalidArgumentError(
        `--target ${target}: no stage has that name${names.length ? ` (stages: ${names.join(', ')})` : ''}`,
        'target',
      );
    }
    targetIndex = found.index;
  }
  const order: number[] = [];
  const visit = (i: number, from: number[]): void => {
    if (order.includes(i)) return;
    if (from.includes(i))
      throw dockerfileError(stages[i]!.fromLine, 'stages depend on each other in a circle');
    const stage = stages[i]!;
    if ('stage' in stage.base) visit(stage.base.stage, [...from, i]);
    for (const ins of stage.instructions) {
      const source = ins.keyword === 'COPY' ? ins.flags.get('from') : undefined;
      if (source === undefined) continue;
      const dep = stageReference(stages, source, i);
      if (dep !== undefined) visit(dep, [...from, i]);
    }
    order.push(i);
  };
  visit(targetIndex, []);
  return {
    escape,
    stages,
    target: targetIndex,
    order,
    globalArgs,
    buildArgs,
    unusedBuildArgs: [...buildArgs.keys()].filter((k) => !declared.has(k)).sort(),
  };
}

/** The stage `COPY --from=X` names (a name or an index of an earlier stage), else undefined (an image). */
export function stageReference(stages: Stage[], from: string, current: number): number | undefined {
  const byName = stages.find((s) => s.name === from.toLowerCase() && s.index < current);
  if (byName) return byName.index;
  if (/^\d+$/.test(from)) {
    const n = Number(from);
    if (n >= current)
      throw dockerfileError(
        stages[current]!.fromLine,
        `COPY --from=${from}: no earlier stage has that index`,
      );
    return n;
  }
  return undefined;
}

function defined(map: ReadonlyMap<string, string | undefined>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of map) if (v !== undefined) out.set(k, v);
  return out;
}

// ------------------------------------------------------------------------------ stage evaluation

/** The runtime part of an OCI image config (`config.config`), the fields a Dockerfile sets. */
export interface RuntimeConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Healthcheck?: Record<string, unknown>;
  Shell?: string[];
  [other: string]: unknown;
}

export interface CopyStep {
  kind: 'copy';
  add: boolean;
  sources: string[];
  dest: string;
  from?: string;
  chown?: string;
  chmod?: number;
}

/** What an instruction needs done beyond the config change. */
export type Step =
  | { kind: 'config' }
  | { kind: 'run'; argv: string[]; env: string[] }
  | CopyStep
  | { kind: 'workdir'; path: string };

export interface Evaluated {
  step: Step;
  /** The instruction after substitution: progress, history `created_by` and the cache key. */
  description: string;
}

const DEFAULT_SHELL = ['/bin/sh', '-c'];

/** One stage's variables and config, instruction by instruction. */
export class StageEvaluator {
  /** ARGs declared in this stage so far: name → value (undefined: declared without one). */
  private readonly args = new Map<string, string | undefined>();
  /** Whether the stage set CMD itself: an ENTRYPOINT after it keeps it. */
  private cmdSet = false;
  readonly config: RuntimeConfig;

  constructor(
    private readonly plan: Pick<BuildPlan, 'escape' | 'globalArgs' | 'buildArgs'>,
    base: RuntimeConfig,
  ) {
    this.config = structuredClone(base);
  }

  /** ENV of the config as a map, over the ARGs in scope (ENV wins, as in Docker). */
  variables(): Map<string, string> {
    const vars = new Map<string, string>();
    for (const [k, v] of this.args) if (v !== undefined) vars.set(k, v);
    for (const e of this.config.Env ?? []) {
      const eq = e.indexOf('=');
      if (eq > 0) vars.set(e.slice(0, eq), e.slice(eq + 1));
    }
    return vars;
  }

  /** The ARGs in scope with values, as `K=V` (what RUN gets besides ENV; part of its cache key). */
  argEnv(): string[] {
    const env = new Set((this.config.Env ?? []).map((e) => e.slice(0, e.indexOf('='))));
    return [...this.args]
      .filter(([k, v]) => v !== undefined && !env.has(k))
      .map(([k, v]) => `${k}=${v}`)
      .sort();
  }

  apply(ins: Instruction): Evaluated {
    const { escape } = this.plan;
    const line = ins.line;
    const vars = this.variables();
    const c = this.config;
    const sub = (t: string) => substitute(t, vars, escape, line);
    const words = (t: string) => substituteWords(t, vars, escape, line);
    const shellForm = (keyword: string): string[] => {
      const json = jsonForm(ins.args);
      if (json) return json;
      if (ins.args === '') throw dockerfileError(line, `${keyword} needs a command`);
      return [...(c.Shell ?? DEFAULT_SHELL), ins.args];
    };
    const config = (description: string): Evaluated => ({ step: { kind: 'config' }, description });
    switch (ins.keyword) {
      case 'RUN': {
        const argv = shellForm('RUN');
        const env = [...(c.Env ?? []), ...this.argEnv()];
        return { step: { kind: 'run', argv, env }, description: `RUN ${JSON.stringify(argv)}` };
      }
      case 'CMD':
        c.Cmd = shellForm('CMD');
        this.cmdSet = true;
        return config(`CMD ${JSON.stringify(c.Cmd)}`);
      case 'ENTRYPOINT':
        c.Entrypoint = shellForm('ENTRYPOINT');
        // an ENTRYPOINT resets a CMD the base image had (Docker); a CMD later in the stage stays
        if (!this.cmdSet) c.Cmd = null;
        return config(`ENTRYPOINT ${JSON.stringify(c.Entrypoint)}`);
      case 'SHELL': {
        const json = jsonForm(ins.args);
        if (!json || json.length === 0)
          throw dockerfileError(line, 'SHELL takes a JSON array: SHELL ["/bin/sh", "-c"]');
        c.Shell = json;
        return config(`SHELL ${JSON.stringify(json)}`);
      }
      case 'ENV': {
        const pairs = keyValues(ins.args, vars, escape, line, 'ENV', true);
        const env = [...(c.Env ?? [])];
        for (const { key, value } of pairs) {
          const at = env.findIndex((e) => e.startsWith(`${key}=`));
          if (at >= 0) env[at] = `${key}=${value}`;
          else env.push(`${key}=${value}`);
        }
        c.Env = env;
        return config(`ENV ${pairs.map((p) => `${p.key}=${p.value}`).join(' ')}`);
      }
      case 'ARG': {
        const pairs = keyValues(ins.args, vars, escape, line, 'ARG', false);
        for (const { key, value } of pairs) {
          if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(key))
            throw dockerfileError(line, `ARG: ${JSON.stringify(key)} is not a name`);
          const global = this.plan.globalArgs.has(key) ? this.plan.globalArgs.get(key) : undefined;
          this.args.set(key, this.plan.buildArgs.get(key) ?? value ?? global);
        }
        return config(
          `ARG ${pairs.map((p) => (p.value === undefined ? p.key : `${p.key}=${p.value}`)).join(' ')}`,
        );
      }
      case 'LABEL': {
        const pairs = keyValues(ins.args, vars, escape, line, 'LABEL', true);
        c.Labels = { ...(c.Labels ?? {}) };
        for (const { key, value } of pairs) c.Labels[key] = value ?? '';
        return config(`LABEL ${pairs.map((p) => `${p.key}=${p.value}`).join(' ')}`);
      }
      case 'MAINTAINER':
        c.Labels = { ...(c.Labels ?? {}), maintainer: sub(ins.args) };
        return config(`MAINTAINER ${sub(ins.args)}`);
      case 'EXPOSE': {
        const ports = words(ins.args);
        if (ports.length === 0) throw dockerfileError(line, 'EXPOSE needs a port (EXPOSE 80 or 53/udp)');
        c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
        for (const p of ports) {
          const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
          if (!m)
            throw dockerfileError(line, `EXPOSE: ${JSON.stringify(p)} is not PORT[-PORT][/tcp|udp|sctp]`);
          const from = Number(m[1]);
          const to = m[2] !== undefined ? Number(m[2]) : from;
          if (from < 1 || to > 65535 || to < from)
            throw dockerfileError(line, `EXPOSE: ${p} is not a port range within 1-65535`);
          for (let port = from; port <= to; port++)
            c.ExposedPorts[`${port}/${(m[3] ?? 'tcp').toLowerCase()}`] = {};
        }
        return config(`EXPOSE ${ports.join(' ')}`);
      }
      case 'USER': {
        const user = sub(ins.args);
        if (user === '') throw dockerfileError(line, 'USER needs a user (NAME|UID[:GROUP|GID])');
        c.User = user;
        return config(`USER ${user}`);
      }
      case 'WORKDIR': {
        const dir = sub(ins.args);
        if (dir === '') throw dockerfileError(line, 'WORKDIR needs a directory');
        const path = normalizeAbsolute(dir.startsWith('/') ? dir : `${c.WorkingDir || '/'}/${dir}`);
        c.WorkingDir = path;
        return { step: { kind: 'workdir', path }, description: `WORKDIR ${path}` };
      }
      case 'VOLUME': {
        const list = jsonForm(ins.args)?.map(sub) ?? words(ins.args);
        if (list.length === 0 || list.some((v) => v === ''))
          throw dockerfileError(line, 'VOLUME needs a path (VOLUME /data)');
        c.Volumes = { ...(c.Volumes ?? {}) };
        for (const v of list) c.Volumes[v] = {};
        return config(`VOLUME ${JSON.stringify(list)}`);
      }
      case 'STOPSIGNAL': {
        const signal = sub(ins.args);
        if (!/^(SIG[A-Z0-9+-]+|[A-Z0-9+-]+|\d+)$/.test(signal))
          throw dockerfileError(
            line,
            `STOPSIGNAL: ${JSON.stringify(signal)} is not a signal (SIGTERM or 15)`,
          );
        c.StopSignal = signal;
        return config(`STOPSIGNAL ${signal}`);
      }
      case 'HEALTHCHECK':
        c.Healthcheck = this.healthcheck(ins);
        return config(`HEALTHCHECK ${JSON.stringify(c.Healthcheck)}`);
      case 'COPY':
      case 'ADD':
        return this.copy(ins, vars);
      case 'ONBUILD':
        throw dockerfileError(line, 'ONBUILD is not supported by skiff image build');
      case 'FROM':
        throw dockerfileError(line, 'FROM inside a stage');
    }
    throw dockerfileError(line, `unknown instruction: ${ins.keyword}`);
  }

  private healthcheck(ins: Instruction): Record<string, unknown> {
    const line = ins.line;
    const words = ins.args.split(/\s+/);
    const kind = words[0]?.toUpperCase();
    if (kind === 'NONE') {
      if (words.length > 1 || ins.flags.size > 0)
        throw dockerfileError(line, 'HEALTHCHECK NONE takes nothing else');
      return { Test: ['NONE'] };
    }
    if (kind !== 'CMD') throw dockerfileError(line, 'HEALTHCHECK takes CMD command… or NONE');
    const rest = ins.args.slice(words[0]!.length).trim();
    if (rest === '') throw dockerfileError(line, 'HEALTHCHECK CMD needs a command');
    const json = jsonForm(rest);
    const check: Record<string, unknown> = { Test: json ? ['CMD', ...json] : ['CMD-SHELL', rest] };
    const durations: [string, string][] = [
      ['interval', 'Interval'],
      ['timeout', 'Timeout'],
      ['start-period', 'StartPeriod'],
      ['start-interval', 'StartInterval'],
    ];
    for (const [flag, field] of durations) {
      const v = ins.flags.get(flag);
      if (v !== undefined) check[field] = parseDuration(v, line, flag);
    }
    const retries = ins.flags.get('retries');
    if (retries !== undefined) {
      if (!/^\d+$/.test(retries))
        throw dockerfileError(line, `HEALTHCHECK --retries: ${JSON.stringify(retries)} is not a number`);
      check.Retries = Number(retries);
    }
    return check;
  }

  private copy(ins: Instruction, vars: Map<string, string>): Evaluated {
    const { escape } = this.plan;
    const line = ins.line;
    const add = ins.keyword === 'ADD';
    const json = jsonForm(ins.args);
    const list = json
      ? json.map((w) => substitute(w, vars, escape, line))
      : substituteWords(ins.args, vars, escape, line);
    if (list.length < 2) throw dockerfileError(line, `${ins.keyword} needs a source and a destination`);
    const sources = list.slice(0, -1);
    let dest = list.at(-1)!;
    if (!dest.startsWith('/')) {
      // relative to WORKDIR; a trailing slash still means "into this directory"
      const trailing = dest.endsWith('/') || dest === '.';
      dest = `${normalizeAbsolute(`${this.config.WorkingDir || '/'}/${dest}`)}${trailing ? '/' : ''}`;
    }
    const step: CopyStep = { kind: 'copy', add, sources, dest };
    const from = ins.flags.get('from');
    if (from !== undefined) step.from = substitute(from, vars, escape, line);
    const chown = ins.flags.get('chown');
    if (chown !== undefined) step.chown = substitute(chown, vars, escape, line);
    const chmod = ins.flags.get('chmod');
    if (chmod !== undefined) {
      const value = substitute(chmod, vars, escape, line);
      if (!/^[0-7]{3,4}$/.test(value))
        throw dockerfileError(
          line,
          `${ins.keyword} --chmod: ${JSON.stringify(value)} is not an octal mode (like 0755)`,
        );
      step.chmod = parseInt(value, 8);
    }
    if (add) {
      for (const s of sources) {
        if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s) || s.startsWith('git@'))
          throw dockerfileError(
            line,
            `ADD ${s}: adding from a URL is not supported; download it in the context and ADD or COPY the file`,
          );
      }
    }
    const flags = [
      step.from !== undefined ? `--from=${step.from}` : '',
      step.chown !== undefined ? `--chown=${step.chown}` : '',
      step.chmod !== undefined ? `--chmod=${step.chmod.toString(8)}` : '',
    ].filter(Boolean);
    return { step, description: [ins.keyword, ...flags, ...sources, step.dest].join(' ') };
  }
}

/** An absolute path with `.`/`..`/double slashes resolved lexically (never above `/`). */
export function normalizeAbsolute(path: string): string {
  return `/${cleanRelative(path)}`;
}
