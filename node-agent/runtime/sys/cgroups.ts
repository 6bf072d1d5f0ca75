/**
 * cgroups for containers on cgroup v2, v1, and the hybrid layout (v1 controllers plus a v2 mount
 * at /sys/fs/cgroup/unified that holds few or no controllers). Each container gets `<parent>/<id>`
 * under every hierarchy that carries a controller it needs; the parent is `skiff` unless the
 * runtime was given another (`--cgroup-parent`: several agents on one machine keep apart). `plan()` decides the directories and
 * limit files; the helper creates and writes them while the container's process builds its
 * mounts, then moves that process in, all before it execs.
 *
 * On the hybrid layout the v1 hierarchies carry every limit and the v2 mount is left alone: its
 * controllers (often just hugetlb) are not needed, which is where crun gives up.
 *
 * Reads, writes and removals of cgroup files are synchronous calls: they are kernel bookkeeping
 * of microseconds, made on every container start and exit, where a trip through Node's thread
 * pool costs ~80 µs.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  errorMessage,
} from '../../../proto/errors.js';
import type { CgroupLimitWrite } from './helper-spec.js';
import { readTextOr } from '../../../proto/support/small-files.js';

/** The controllers containers use. `devices` exists on v1 only (v2 needs eBPF programs). */
export type Controller = 'memory' | 'cpu' | 'cpuacct' | 'pids' | 'devices';
const V1_CONTROLLERS: Controller[] = ['memory', 'cpu', 'cpuacct', 'pids', 'devices'];
const V2_CONTROLLERS = ['memory', 'cpu', 'pids'];

export type CgroupLayout =
  | { kind: 'v2'; unified: string }
  | { kind: 'v1' | 'hybrid'; controllers: Partial<Record<Controller, string>>; unified?: string };

/** Reads cgroup mounts out of /proc/self/mountinfo text. Pure. */
export function parseCgroupLayout(mountinfo: string): CgroupLayout {
  const v1: Partial<Record<Controller, string>> = {};
  let unified: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const [fstype, , superOptions = ''] = line.slice(sep + 3).split(' ');
    const mountPoint = left[4];
    if (!mountPoint) continue;
    if (fstype === 'cgroup2') unified ??= mountPoint;
    if (fstype === 'cgroup') {
      for (const opt of superOptions.split(',')) {
        if ((V1_CONTROLLERS as string[]).includes(opt)) v1[opt as Controller] ??= mountPoint;
      }
    }
  }
  if (Object.keys(v1).length > 0) return { kind: unified ? 'hybrid' : 'v1', controllers: v1, unified };
  if (unified) return { kind: 'v2', unified };
  throw new FailedPreconditionError(
    'detect cgroups: no cgroup file system is mounted (mount cgroup2 on /sys/fs/cgroup)',
  );
}

export async function detectCgroupLayout(): Promise<CgroupLayout> {
  return parseCgroupLayout(await readFile('/proc/self/mountinfo', 'utf8'));
}

export interface CgroupLimits {
  memoryBytes?: number;
  /** CPU time per period, in microseconds (cpus × period). */
  cpuQuotaUs?: number;
  cpuPeriodUs?: number;
  pidsMax?: number;
  /** Every device may be opened (a privileged container): no device rules are written. */
  allDevices?: boolean;
}

export interface CgroupWrite {
  controller: Controller | 'unified';
  file: string;
  value: string;
  /** A file that may be absent (memsw without swap accounting): skip it then. */
  optional?: boolean;
}

/** Docker's device rules: only the standard character devices and ptys may be opened. */
export const DEVICE_ALLOW_V1 = [
  'c *:* m',
  'b *:* m',
  'c 1:3 rwm',
  'c 1:5 rwm',
  'c 1:7 rwm',
  'c 1:8 rwm',
  'c 1:9 rwm',
  'c 5:0 rwm',
  'c 5:1 rwm',
  'c 5:2 rwm',
  'c 136:* rwm',
];

/** The files to write, in order, for some limits on a layout. Pure. */
export function limitWrites(layout: CgroupLayout, limits: CgroupLimits): CgroupWrite[] {
  const w: CgroupWrite[] = [];
  const period = limits.cpuPeriodUs ?? 100_000;
  if (layout.kind === 'v2') {
    if (limits.memoryBytes !== undefined) {
      w.push({ controller: 'unified', file: 'memory.max', value: String(limits.memoryBytes) });
      w.push({ controller: 'unified', file: 'memory.swap.max', value: '0', optional: true });
    }
    if (limits.cpuQuotaUs !== undefined) {
      w.push({ controller: 'unified', file: 'cpu.max', value: `${limits.cpuQuotaUs} ${period}` });
    }
    if (limits.pidsMax !== undefined)
      w.push({ controller: 'unified', file: 'pids.max', value: String(limits.pidsMax) });
    return w;
  }
  if (limits.memoryBytes !== undefined) {
    w.push({ controller: 'memory', file: 'memory.limit_in_bytes', value: String(limits.memoryBytes) });
    // Without this a container with swap available would swap instead of being OOM-killed.
    w.push({
      controller: 'memory',
      file: 'memory.memsw.limit_in_bytes',
      value: String(limits.memoryBytes),
      optional: true,
    });
  }
  if (limits.cpuQuotaUs !== undefined) {
    w.push({ controller: 'cpu', file: 'cpu.cfs_period_us', value: String(period) });
    w.push({ controller: 'cpu', file: 'cpu.cfs_quota_us', value: String(limits.cpuQuotaUs) });
  }
  if (limits.pidsMax !== undefined)
    w.push({ controller: 'pids', file: 'pids.max', value: String(limits.pidsMax) });
  if (layout.controllers.devices && !limits.allDevices) {
    w.push({ controller: 'devices', file: 'devices.deny', value: 'a' });
    for (const rule of DEVICE_ALLOW_V1) w.push({ controller: 'devices', file: 'devices.allow', value: rule });
  }
  return w;
}

/** "oom_kill N" from v1 memory.oom_control or v2 memory.events. Pure. */
export function parseOomKills(text: string): number {
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** A flat "key value" file (memory.stat, cpu.stat). Pure. */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** A container's cgroups as the helper creates them (sys/helper-spec.ts carries it). */
export interface CgroupPlan {
  /** Directories to create, each parent before its child; existing ones are fine. */
  mkdirs: string[];
  /** Limit files to write, in order, once the directories exist. */
  writes: CgroupLimitWrite[];
  /** The directories whose cgroup.procs the container's process joins. */
  join: string[];
}

export interface CgroupStats {
  memoryBytes: number;
  memoryLimitBytes?: number;
  cpuUsageNs: number;
  pids: number;
  oomKills: number;
}

/** The cgroup parent containers get when none is given. */
export const DEFAULT_CGROUP_PARENT = 'skiff';

/** Levels a cgroup parent may have: the helper creates at most 32 directories per container. */
const MAX_PARENT_DEPTH = 4;

/**
 * Checks a cgroup parent: a relative path of 1-4 names (letters, digits, `_`, `.`, `-`, not `.` or
 * `..`), e.g. `skiff` or `skiff-lab/n1`, so it can only name directories below each hierarchy's
 * root. Returns it; throws InvalidArgumentError naming the flag.
 */
export function validateCgroupParent(parent: string, field = 'cgroup-parent'): string {
  const parts = parent.split('/');
  const bad = parts.find((part) => !/^[A-Za-z0-9_.-]+$/.test(part) || part === '.' || part === '..');
  if (parent === '' || bad !== undefined || parts.length > MAX_PARENT_DEPTH) {
    throw new InvalidArgumentError(
      `cgroup parent ${JSON.stringify(parent)}: give a relative path of 1 to ${MAX_PARENT_DEPTH} names of letters, digits, _, . and - (e.g. skiff or skiff/node-1)`,
      field,
    );
  }
  return parent;
}

function controllersFor(layout: CgroupLayout): [Controller | 'unified', string][] {
  if (layout.kind === 'v2') return [['unified', layout.unified]];
  return Object.entries(layout.controllers) as [Controller, string][];
}

/**
 * The cgroups of containers under `<hierarchy>/<parent>/<id>`. Created by the helper at start, read for
 * stats and OOM, removed (after killing what is left inside) on rm.
 */
export class Cgroups {
  constructor(
    readonly layout: CgroupLayout,
    readonly parent = DEFAULT_CGROUP_PARENT,
  ) {
    validateCgroupParent(parent);
  }

  static async detect(parent = DEFAULT_CGROUP_PARENT): Promise<Cgroups> {
    return new Cgroups(await detectCgroupLayout(), parent);
  }

  /** The same layout under another parent (a container recorded under it). */
  withParent(parent: string): Cgroups {
    return parent === this.parent ? this : new Cgroups(this.layout, parent);
  }

  /** `<hierarchy>/<first name>`, `<hierarchy>/<first>/<second>`, … down to the parent itself. */
  private parentLevels(mount: string): string[] {
    const parts = this.parent.split('/');
    return parts.map((_, i) => join(mount, ...parts.slice(0, i + 1)));
  }

  /** The distinct directories of one container (co-mounted controllers share one). */
  dirs(id: string): string[] {
    return [...new Set(controllersFor(this.layout).map(([, mount]) => join(mount, this.parent, id)))];
  }

  /** `<hierarchy>/<parent>` for every hierarchy, in the order of dirs(). */
  parentDirs(): string[] {
    return [...new Set(controllersFor(this.layout).map(([, mount]) => join(mount, this.parent)))];
  }

  /**
   * Makes the parents warm shims park under (sys/helper.ts WarmShims), and removes the empty
   * `warm-<pid>` cgroups a killed warm shim left; one still holding its parked process is busy
   * and stays.
   */
  async prepareWarm(): Promise<void> {
    for (const parent of this.parentDirs()) {
      mkdirSync(parent, { recursive: true });
      for (const name of readdirSync(parent).filter((n) => /^warm-\d+$/.test(n))) {
        try {
          rmdirSync(join(parent, name));
        } catch {
          // still holds its parked process
        }
      }
    }
  }

  /**
   * Where device access must be filtered by a BPF program: cgroup v2, which has no devices
   * controller. (v1 and hybrid use the devices controller's rules from limitWrites.)
   */
  deviceFilterDirs(id: string): string[] {
    return this.layout.kind === 'v2' ? [join(this.layout.unified, this.parent, id)] : [];
  }

  private dir(id: string, controller: Controller | 'unified'): string | undefined {
    if (this.layout.kind === 'v2') return join(this.layout.unified, this.parent, id);
    const mount = controller === 'unified' ? undefined : this.layout.controllers[controller];
    return mount ? join(mount, this.parent, id) : undefined;
  }

  /**
   * What creating a container's cgroups takes, for the helper to do while the container's process
   * builds its mounts (the directories, parents first, then the limit files, then the join). On
   * v2, call prepareParent() first so the controllers' files exist in the new directories.
   */
  plan(id: string, limits: CgroupLimits): CgroupPlan {
    const mkdirs: string[] = [];
    for (const mount of new Set(controllersFor(this.layout).map(([, m]) => m))) {
      mkdirs.push(...this.parentLevels(mount), join(mount, this.parent, id));
    }
    const writes: CgroupLimitWrite[] = [];
    // writes to one controller keep their order (period before quota, deny before allow)
    for (const w of limitWrites(this.layout, limits)) {
      const dir = this.dir(id, w.controller);
      if (dir) writes.push({ path: join(dir, w.file), value: w.value, optional: w.optional ?? false });
    }
    return { mkdirs, writes, join: this.dirs(id) };
  }

  /** cgroup v2: enables the controllers containers use for the parent's children. */
  async prepareParent(): Promise<void> {
    if (this.layout.kind !== 'v2') return;
    const root = this.layout.unified;
    const available = readTextOr(join(root, 'cgroup.controllers'), '').trim().split(/\s+/);
    const wanted = V2_CONTROLLERS.filter((c) => available.includes(c));
    const enable = wanted.map((c) => `+${c}`).join(' ');
    mkdirSync(join(root, this.parent), { recursive: true });
    for (const dir of [root, ...this.parentLevels(root)]) {
      try {
        writeFileSync(join(dir, 'cgroup.subtree_control'), enable);
      } catch {
        // a controller the parent cannot delegate: its limits fail later, naming the file
      }
    }
  }

  async stats(id: string): Promise<CgroupStats> {
    if (this.layout.kind === 'v2') {
      const d = this.dir(id, 'unified')!;
      const cpu = parseFlatKeyed(readTextOr(join(d, 'cpu.stat'), ''));
      const limit = readTextOr(join(d, 'memory.max'), '').trim();
      return {
        memoryBytes: Number(readTextOr(join(d, 'memory.current'), '').trim() || 0),
        memoryLimitBytes: /^\d+$/.test(limit) ? Number(limit) : undefined,
        cpuUsageNs: (cpu.usage_usec ?? 0) * 1000,
        pids: Number(readTextOr(join(d, 'pids.current'), '').trim() || 0),
        oomKills: parseOomKills(readTextOr(join(d, 'memory.events'), '')),
      };
    }
    const at = (c: Controller, f: string) => {
      const d = this.dir(id, c);
      return d ? readTextOr(join(d, f), '') : '';
    };
    const limit = Number(at('memory', 'memory.limit_in_bytes').trim() || 0);
    return {
      memoryBytes: Number(at('memory', 'memory.usage_in_bytes').trim() || 0),
      // v1 reports "no limit" as a page-rounded LONG_MAX
      memoryLimitBytes: limit > 0 && limit < 2 ** 62 ? limit : undefined,
      cpuUsageNs: Number(at('cpuacct', 'cpuacct.usage').trim() || 0),
      pids: Number(at('pids', 'pids.current').trim() || 0),
      oomKills: parseOomKills(at('memory', 'memory.oom_control')),
    };
  }

  async oomKills(id: string): Promise<number> {
    const file =
      this.layout.kind === 'v2'
        ? join(this.dir(id, 'unified')!, 'memory.events')
        : join(this.dir(id, 'memory') ?? '/nonexistent', 'memory.oom_control');
    return parseOomKills(readTextOr(file, ''));
  }

  /**
   * Removes the container's cgroups, killing whatever is left inside first. Idempotent. An rmdir
   * comes first: on the usual paths (already gone, or empty) that is the only call per directory.
   */
  async remove(id: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const removeDir = async (d: string): Promise<void> => {
      for (;;) {
        try {
          rmdirSync(d);
          return;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') return;
          if (code !== 'EBUSY')
            throw new InternalError(`remove cgroup ${d}: ${errorMessage(err)}`, { cause: err });
          // processes inside, or exited ones the kernel has not finished tearing down
          const pids = readTextOr(join(d, 'cgroup.procs'), '').split('\n').filter(Boolean).map(Number);
          if (Date.now() > deadline) {
            throw new InternalError(
              pids.length > 0
                ? `remove cgroups of ${id}: processes ${pids.join(', ')} survive SIGKILL`
                : `remove cgroup ${d}: still busy after ${timeoutMs} ms`,
              { cause: err },
            );
          }
          for (const pid of pids) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // already gone
            }
          }
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    await Promise.all(this.dirs(id).map(removeDir));
  }

  /** Whether the container's cgroups exist (for tests and clean-up checks). */
  async exists(id: string): Promise<boolean> {
    return this.dirs(id).some((d) => existsSync(d));
  }

  /** Names of container cgroups under the parent (for clean-up of leftovers). */
  async list(): Promise<string[]> {
    const names = new Set<string>();
    for (const [, mount] of controllersFor(this.layout)) {
      try {
        for (const n of readdirSync(join(mount, this.parent))) if (/^[0-9a-f]{64}$/.test(n)) names.add(n);
      } catch {
        // no parent yet
      }
    }
    return [...names];
  }
}
