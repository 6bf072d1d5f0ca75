/**
 * The scheduler profile: which plugins filter and score, with which weights, and how much of the
 * cluster to look at per pod. YAML, Kubernetes-shaped — either a profile on its own
 *
 *   schedulerName: default-scheduler     # the pods (spec.schedulerName) this scheduler places
 *   percentageOfNodesToScore: 0          # 0: adaptive, as Kubernetes (50 − nodes/125 %, ≥ 5 %)
 *   podInitialBackoffSeconds: 1
 *   podMaxBackoffSeconds: 10
 *   plugins:
 *     filter:
 *       disabled: [NodePorts]            # or ['*']: none of the defaults
 *     score:
 *       enabled: [{name: ImageLocality, weight: 5}]
 *       disabled: [{name: NodeResourcesBalancedAllocation}]
 *     postFilter:
 *       disabled: [DefaultPreemption]
 *
 * or a KubeSchedulerConfiguration (apiVersion kubescheduler.config.k8s.io/v1) holding one such
 * profile under `profiles`. Plugins are named as strings or `{name, weight}`. Kubernetes' merge:
 * the defaults, less the disabled ones; an enabled default keeps its place with the given weight;
 * other enabled plugins follow. A score plugin enabled without a weight keeps its default weight
 * (1 for one that is not a default).
 *
 * Anything wrong is an InvalidArgumentError naming the field: an unknown key, an unknown plugin
 * (with the known ones listed), a weight that is not a positive whole number.
 */
import { parse as parseYaml } from 'yaml';
import { errorMessage, InvalidArgumentError } from '../../proto/errors.js';
import { DEFAULT_SCHEDULER_NAME } from '../api/defaulting.js';
import {
  DEFAULT_FILTERS,
  DEFAULT_POST_FILTERS,
  DEFAULT_SCORES,
  FILTER_PLUGINS,
  POST_FILTER_PLUGINS,
  SCORE_PLUGINS,
} from './plugins/registry.js';

export interface WeightedPlugin {
  readonly name: string;
  readonly weight: number;
}

export interface SchedulerProfile {
  readonly schedulerName: string;
  /** 0: adaptive. */
  readonly percentageOfNodesToScore: number;
  readonly podInitialBackoffSeconds: number;
  readonly podMaxBackoffSeconds: number;
  /** Filter plugins in the order they run. */
  readonly filters: readonly string[];
  readonly scores: readonly WeightedPlugin[];
  readonly postFilters: readonly string[];
}

export function defaultProfile(): SchedulerProfile {
  return {
    schedulerName: DEFAULT_SCHEDULER_NAME,
    percentageOfNodesToScore: 0,
    podInitialBackoffSeconds: 1,
    podMaxBackoffSeconds: 10,
    filters: [...DEFAULT_FILTERS],
    scores: DEFAULT_SCORES.map((score) => ({ ...score })),
    postFilters: [...DEFAULT_POST_FILTERS],
  };
}

const MIN_FEASIBLE_NODES = 100;
const MIN_FEASIBLE_PERCENTAGE = 5;

/**
 * How many feasible nodes to find before scoring, as kube-scheduler: all of a cluster under 100
 * nodes; else the percentage (adaptive when 0: 50 − nodes/125, at least 5), at least 100 nodes.
 */
export function feasibleNodesToFind(percentageOfNodesToScore: number, nodes: number): number {
  if (nodes < MIN_FEASIBLE_NODES || percentageOfNodesToScore >= 100) return nodes;
  let percentage = percentageOfNodesToScore;
  if (percentage === 0) percentage = Math.max(MIN_FEASIBLE_PERCENTAGE, 50 - Math.trunc(nodes / 125));
  return Math.max(MIN_FEASIBLE_NODES, Math.trunc((nodes * percentage) / 100));
}

type Doc = Record<string, unknown>;

function isObject(value: unknown): value is Doc {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class ProfileReader {
  constructor(private readonly source: string) {}

  fail(field: string, problem: string): never {
    const where = field === '' ? '' : `${field}: `;
    throw new InvalidArgumentError(
      `read scheduler profile ${this.source}: ${where}${problem}`,
      field || undefined,
    );
  }

  keys(doc: Doc, path: string, allowed: readonly string[]): void {
    for (const key of Object.keys(doc)) {
      if (!allowed.includes(key)) {
        this.fail(path === '' ? key : `${path}.${key}`, `unknown field; known: ${allowed.join(', ')}`);
      }
    }
  }

  integer(doc: Doc, key: string, path: string, min: number, max: number, fallback: number): number {
    const value = doc[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(path, `must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
    }
    return value;
  }

  pluginList(value: unknown, path: string): { name: string; weight: number | undefined; path: string }[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) this.fail(path, 'must be a list of plugins (names, or {name, weight})');
    return value.map((item, i) => {
      const at = `${path}[${i}]`;
      if (typeof item === 'string') return { name: item, weight: undefined, path: at };
      if (!isObject(item)) this.fail(at, 'must be a plugin name or {name, weight}');
      this.keys(item, at, ['name', 'weight']);
      if (typeof item.name !== 'string' || item.name === '')
        this.fail(`${at}.name`, 'required: the plugin name');
      let weight: number | undefined;
      if (item.weight !== undefined && item.weight !== null) {
        if (typeof item.weight !== 'number' || !Number.isInteger(item.weight) || item.weight < 1) {
          this.fail(`${at}.weight`, `must be a positive whole number, got ${JSON.stringify(item.weight)}`);
        }
        weight = item.weight;
      }
      return { name: item.name, weight, path: at };
    });
  }

  /** Kubernetes' merge of one extension point's defaults with what the profile says. */
  extensionPoint(
    plugins: Doc,
    pluginsPath: string,
    point: 'filter' | 'score' | 'postFilter',
    known: readonly string[],
    defaults: readonly WeightedPlugin[],
  ): WeightedPlugin[] {
    const path = `${pluginsPath}.${point}`;
    const section = plugins[point];
    if (section === undefined || section === null) return defaults.map((plugin) => ({ ...plugin }));
    if (!isObject(section)) this.fail(path, 'must be a map with enabled and/or disabled');
    this.keys(section, path, ['enabled', 'disabled']);
    const check = (name: string, at: string) => {
      if (!known.includes(name)) {
        const elsewhere = [...FILTER_PLUGINS, ...SCORE_PLUGINS, ...POST_FILTER_PLUGINS].includes(name);
        this.fail(
          at,
          `${elsewhere ? `"${name}" is not a ${point} plugin` : `unknown plugin "${name}"`}; ${point} plugins: ${known.join(', ')}`,
        );
      }
    };
    const disabled = this.pluginList(section.disabled, `${path}.disabled`);
    const everything = disabled.some((plugin) => plugin.name === '*');
    for (const plugin of disabled) {
      if (plugin.name !== '*') check(plugin.name, `${plugin.path}.name`);
      if (plugin.weight !== undefined)
        this.fail(`${plugin.path}.weight`, 'a disabled plugin takes no weight');
    }
    const off = new Set(disabled.map((plugin) => plugin.name));
    const result: WeightedPlugin[] = everything
      ? []
      : defaults.filter((plugin) => !off.has(plugin.name)).map((plugin) => ({ ...plugin }));
    for (const plugin of this.pluginList(section.enabled, `${path}.enabled`)) {
      check(plugin.name, `${plugin.path}.name`);
      if (plugin.weight !== undefined && point !== 'score') {
        this.fail(`${plugin.path}.weight`, `only score plugins take a weight, not ${point} plugins`);
      }
      const fallback = defaults.find((d) => d.name === plugin.name)?.weight ?? 1;
      const entry = { name: plugin.name, weight: plugin.weight ?? fallback };
      const at = result.findIndex((existing) => existing.name === plugin.name);
      if (at === -1) result.push(entry);
      else result[at] = entry;
    }
    return result;
  }

  profile(doc: Doc, path: string, top: Doc): SchedulerProfile {
    const base = defaultProfile();
    const field = (key: string) => (path === '' ? key : `${path}.${key}`);
    const schedulerName = doc.schedulerName ?? base.schedulerName;
    if (typeof schedulerName !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(schedulerName)) {
      this.fail(field('schedulerName'), `must be a DNS subdomain, got ${JSON.stringify(schedulerName)}`);
    }
    const percentage = this.integer(
      doc,
      'percentageOfNodesToScore',
      field('percentageOfNodesToScore'),
      0,
      100,
      this.integer(top, 'percentageOfNodesToScore', 'percentageOfNodesToScore', 0, 100, 0),
    );
    const initialBackoff = this.integer(
      top,
      'podInitialBackoffSeconds',
      'podInitialBackoffSeconds',
      1,
      3600,
      1,
    );
    const maxBackoff = this.integer(top, 'podMaxBackoffSeconds', 'podMaxBackoffSeconds', 1, 3600, 10);
    if (maxBackoff < initialBackoff) {
      this.fail('podMaxBackoffSeconds', `must be at least podInitialBackoffSeconds (${initialBackoff})`);
    }
    const plugins = doc.plugins ?? {};
    if (!isObject(plugins)) this.fail(field('plugins'), 'must be a map of extension points');
    const pluginsPath = field('plugins');
    for (const key of Object.keys(plugins)) {
      if (!['filter', 'score', 'postFilter'].includes(key)) {
        this.fail(
          `${pluginsPath}.${key}`,
          `unknown or unsupported extension point; skiff's profiles configure filter (with preFilter), score (with preScore) and postFilter`,
        );
      }
    }
    const asPlugins = (names: readonly string[]) => names.map((name) => ({ name, weight: 0 }));
    return {
      schedulerName,
      percentageOfNodesToScore: percentage,
      podInitialBackoffSeconds: initialBackoff,
      podMaxBackoffSeconds: maxBackoff,
      filters: this.extensionPoint(
        plugins,
        pluginsPath,
        'filter',
        FILTER_PLUGINS,
        asPlugins(DEFAULT_FILTERS),
      ).map((plugin) => plugin.name),
      scores: this.extensionPoint(plugins, pluginsPath, 'score', SCORE_PLUGINS, DEFAULT_SCORES),
      postFilters: this.extensionPoint(
        plugins,
        pluginsPath,
        'postFilter',
        POST_FILTER_PLUGINS,
        asPlugins(DEFAULT_POST_FILTERS),
      ).map((plugin) => plugin.name),
    };
  }
}

/**
 * Reads a scheduler profile from YAML text; `source` (a file name) is named in errors. Empty text
 * is the default profile.
 */
export function parseProfile(text: string, source = 'profile'): SchedulerProfile {
  const reader: ProfileReader = new ProfileReader(source);
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    reader.fail('', `not YAML: ${errorMessage(err)}`);
  }
  if (doc === undefined || doc === null) return defaultProfile();
  if (!isObject(doc)) reader.fail('', 'must be a map (a scheduler profile or a KubeSchedulerConfiguration)');
  if (doc.kind !== undefined || doc.apiVersion !== undefined) {
    if (doc.kind !== 'KubeSchedulerConfiguration') reader.fail('kind', 'must be KubeSchedulerConfiguration');
    if (doc.apiVersion !== 'kubescheduler.config.k8s.io/v1') {
      reader.fail('apiVersion', 'must be kubescheduler.config.k8s.io/v1');
    }
    reader.keys(doc, '', [
      'apiVersion',
      'kind',
      'percentageOfNodesToScore',
      'podInitialBackoffSeconds',
      'podMaxBackoffSeconds',
      'profiles',
    ]);
    const profiles = doc.profiles ?? [{}];
    if (!Array.isArray(profiles) || profiles.length !== 1 || !isObject(profiles[0])) {
      reader.fail('profiles', 'must hold exactly one profile (skiff runs one scheduler profile)');
    }
    reader.keys(profiles[0], 'profiles[0]', ['schedulerName', 'percentageOfNodesToScore', 'plugins']);
    return reader.profile(profiles[0], 'profiles[0]', doc);
  }
  reader.keys(doc, '', [
    'schedulerName',
    'percentageOfNodesToScore',
    'podInitialBackoffSeconds',
    'podMaxBackoffSeconds',
    'plugins',
  ]);
  return reader.profile(doc, '', doc);
}
