/**
 * `skiff describe`: a readable multi-line view of one object, in kubectl's layout: metadata,
 * labels and annotations, the kind's spec essentials, status and conditions, then the Events about
 * the object. The last-applied annotation is left out: it repeats the manifest.
 */
import { milliValue, wholeValue } from '../../proto/quantity.js';
import { LAST_APPLIED_ANNOTATION } from '../apply.js';
import { age } from '../../proto/printing/age.js';
import { renderTable } from './table.js';
import { eventLastSeen, podStatus } from '../../proto/printing/columns.js';
import {
  field,
  formatMap,
  formatSelector,
  list,
  num,
  record,
  str,
  type ObjectJson,
} from '../../proto/printing/fields.js';

type Line = [label: string, value: string] | string;

const LABEL_WIDTH = 20;

function pad(label: string): string {
  return `${label}:`.padEnd(LABEL_WIDTH);
}

function renderLines(lines: Line[], indent = ''): string {
  return lines
    .map((line) => (typeof line === 'string' ? `${indent}${line}` : `${indent}${pad(line[0])}${line[1]}`))
    .join('\n');
}

function mapLines(label: string, map: Record<string, unknown>): Line[] {
  return listLines(
    label,
    Object.entries(map).map(([k, v]) => `${k}=${String(v)}`),
  );
}

function listLines(label: string, entries: string[]): Line[] {
  if (entries.length === 0) return [[label, '<none>']];
  const [first, ...rest] = entries;
  return [[label, first!], ...rest.map((entry) => `${' '.repeat(LABEL_WIDTH)}${entry}`)];
}

/** kubectl's words for a toleration: `key=value:effect`, ` op=Exists`, ` for 300s`. */
function tolerationText(t: unknown): string {
  const key = str(t, 'key') ?? '';
  const value = str(t, 'value');
  const effect = str(t, 'effect');
  const seconds = num(t, 'tolerationSeconds');
  return `${key}${value ? `=${value}` : ''}${effect ? `:${effect}` : ''}${str(t, 'operator') === 'Exists' ? ' op=Exists' : ''}${seconds !== undefined ? ` for ${seconds}s` : ''}`;
}

function containerLines(containers: unknown[]): string[] {
  const out: string[] = [];
  for (const c of containers) {
    out.push(`  ${str(c, 'name') ?? ''}:`);
    out.push(`    Image:        ${str(c, 'image') ?? ''}`);
    const command = list(c, 'command');
    if (command.length) out.push(`    Command:      ${command.map(String).join(' ')}`);
    const args = list(c, 'args');
    if (args.length) out.push(`    Args:         ${args.map(String).join(' ')}`);
    const ports = list(c, 'ports').map(
      (p) => `${num(p, 'containerPort') ?? ''}/${str(p, 'protocol') ?? 'TCP'}`,
    );
    if (ports.length) out.push(`    Ports:        ${ports.join(', ')}`);
    const limits = formatMap(record(c, 'resources', 'limits'));
    const requests = formatMap(record(c, 'resources', 'requests'));
    if (limits !== '<none>') out.push(`    Limits:       ${limits}`);
    if (requests !== '<none>') out.push(`    Requests:     ${requests}`);
    const env = list(c, 'env');
    if (env.length) {
      out.push('    Environment:');
      for (const e of env) {
        const from = field(e, 'valueFrom');
        out.push(`      ${str(e, 'name')}:  ${from ? '<set from a reference>' : (str(e, 'value') ?? '')}`);
      }
    }
    const mounts = list(c, 'volumeMounts');
    if (mounts.length) {
      out.push('    Mounts:');
      for (const m of mounts)
        out.push(
          `      ${str(m, 'mountPath')} from ${str(m, 'name')}${field(m, 'readOnly') === true ? ' (ro)' : ''}`,
        );
    }
  }
  return out;
}

function podTemplateLines(podSpec: unknown): string[] {
  const out: string[] = [];
  const init = list(podSpec, 'initContainers');
  if (init.length) out.push('Init Containers:', ...containerLines(init));
  out.push('Containers:', ...containerLines(list(podSpec, 'containers')));
  const volumes = list(podSpec, 'volumes');
  if (volumes.length) {
    out.push('Volumes:');
    for (const v of volumes) {
      const kind = Object.keys(v as object).find((k) => k !== 'name') ?? 'unknown';
      out.push(`  ${str(v, 'name')}:  ${kind}`);
    }
  }
  return out;
}

function kindLines(obj: ObjectJson): string[] {
  const kind = str(obj, 'kind');
  switch (kind) {
    case 'Pod': {
      const statuses = list(obj, 'status', 'containerStatuses');
      return [
        renderLines([
          ['Node', str(obj, 'spec', 'nodeName') || '<none>'],
          ['Start Time', str(obj, 'status', 'startTime') || '<none>'],
          ['Status', podStatus(obj)],
          ['IP', str(obj, 'status', 'podIP') || '<none>'],
          ['Restart Policy', str(obj, 'spec', 'restartPolicy') || 'Always'],
        ]),
        ...podTemplateLines(field(obj, 'spec')),
        renderLines([
          ...mapLines('Node-Selectors', record(obj, 'spec', 'nodeSelector')),
          ...listLines('Tolerations', list(obj, 'spec', 'tolerations').map(tolerationText)),
        ]),
        ...(statuses.length
          ? [
              'Container Statuses:',
              ...statuses.map((cs) => {
                const state = Object.keys(record(cs, 'state'))[0] ?? 'unknown';
                return `  ${str(cs, 'name')}:  ${state}, ready=${String(field(cs, 'ready') === true)}, restarts=${num(cs, 'restartCount') ?? 0}`;
              }),
            ]
          : []),
      ];
    }
    case 'Deployment':
    case 'ReplicaSet':
    case 'DaemonSet':
    case 'Job': {
      const lines: Line[] = [['Selector', formatSelector(field(obj, 'spec', 'selector'))]];
      if (kind === 'Deployment') {
        lines.push([
          'Replicas',
          `${num(obj, 'spec', 'replicas') ?? 1} desired | ${num(obj, 'status', 'updatedReplicas') ?? 0} updated | ${num(obj, 'status', 'replicas') ?? 0} total | ${num(obj, 'status', 'availableReplicas') ?? 0} available | ${num(obj, 'status', 'unavailableReplicas') ?? 0} unavailable`,
        ]);
        lines.push(['StrategyType', str(obj, 'spec', 'strategy', 'type') || 'RollingUpdate']);
      } else if (kind === 'ReplicaSet') {
        lines.push([
          'Replicas',
          `${num(obj, 'status', 'replicas') ?? 0} current / ${num(obj, 'spec', 'replicas') ?? 1} desired`,
        ]);
      } else if (kind === 'Job') {
        lines.push([
          'Completions',
          `${num(obj, 'status', 'succeeded') ?? 0}/${num(obj, 'spec', 'completions') ?? 1}`,
        ]);
        lines.push(['Parallelism', String(num(obj, 'spec', 'parallelism') ?? 1)]);
      }
      return [
        renderLines(lines),
        'Pod Template:',
        ...mapLines('  Labels', record(obj, 'spec', 'template', 'metadata', 'labels')).map((l) =>
          typeof l === 'string' ? `  ${l}` : `  ${pad(l[0].trim())}${l[1]}`,
        ),
        ...podTemplateLines(field(obj, 'spec', 'template', 'spec')).map((l) => `  ${l}`),
      ];
    }
    case 'Service':
      return [
        renderLines([
          ['Selector', formatMap(record(obj, 'spec', 'selector'))],
          ['Type', str(obj, 'spec', 'type') || 'ClusterIP'],
          ['IP', str(obj, 'spec', 'clusterIP') || '<none>'],
          ...list(obj, 'spec', 'ports').map((p): Line => [
            'Port',
            `${str(p, 'name') || '<unset>'}  ${num(p, 'port') ?? ''}/${str(p, 'protocol') ?? 'TCP'} -> ${str(p, 'targetPort') ?? num(p, 'port') ?? ''}`,
          ]),
        ]),
      ];
    case 'ConfigMap':
    case 'Secret': {
      const data = record(obj, 'data');
      const out = kind === 'Secret' ? [renderLines([['Type', str(obj, 'type') || 'Opaque']])] : [];
      out.push('Data', '====');
      for (const [key, value] of Object.entries(data)) {
        const text = String(value);
        out.push(
          kind === 'Secret'
            ? `${key}:  ${Buffer.from(text, 'base64').length} bytes`
            : `${key}:\n----\n${text}`,
        );
      }
      return out;
    }
    case 'Node':
      return [
        renderLines([
          [
            'Taints',
            list(obj, 'spec', 'taints')
              .map(
                (t) => `${str(t, 'key')}${str(t, 'value') ? `=${str(t, 'value')}` : ''}:${str(t, 'effect')}`,
              )
              .join(', ') || '<none>',
          ],
          ['Unschedulable', String(field(obj, 'spec', 'unschedulable') === true)],
          ['PodCIDR', str(obj, 'spec', 'podCIDR') || '<none>'],
          ...list(obj, 'status', 'addresses').map((a): Line => [
            `  ${str(a, 'type')}`,
            str(a, 'address') ?? '',
          ]),
        ]),
        ...['capacity', 'allocatable'].flatMap((k) => {
          const entries = Object.entries(record(obj, 'status', k));
          return entries.length
            ? [`${k[0]!.toUpperCase()}${k.slice(1)}:`, ...entries.map(([r, q]) => `  ${r}:  ${String(q)}`)]
            : [];
        }),
        ...(Object.keys(record(obj, 'status', 'nodeInfo')).length
          ? [
              'System Info:',
              ...(
                [
                  ['Machine ID', 'machineID'],
                  ['Boot ID', 'bootID'],
                  ['Kernel Version', 'kernelVersion'],
                  ['OS Image', 'osImage'],
                  ['Operating System', 'operatingSystem'],
                  ['Architecture', 'architecture'],
                  ['Container Runtime Version', 'containerRuntimeVersion'],
                  ['Agent Version', 'kubeletVersion'],
                ] as const
              ).map(([label, key]) => `  ${label}:  ${str(obj, 'status', 'nodeInfo', key) ?? ''}`),
            ]
          : []),
      ];
    default:
      return [];
  }
}

/** The pods that hold a node's resources, with their requests and limits, as kubectl describe node. */
function nodePodLines(node: ObjectJson, pods: ObjectJson[], now: number): string[] {
  const running = pods.filter((p) => !['Succeeded', 'Failed'].includes(str(p, 'status', 'phase') ?? ''));
  const allocatable = record(node, 'status', 'allocatable');
  const sums: Record<string, { requests: number; limits: number }> = {};
  const add = (resource: string, kind: 'requests' | 'limits', quantity: unknown): void => {
    if (typeof quantity !== 'string') return;
    const value = resource === 'cpu' ? milliValue(quantity) : wholeValue(quantity);
    (sums[resource] ??= { requests: 0, limits: 0 })[kind] += value;
  };
  const rows = running.map((p) => {
    const podSums: Record<string, Record<string, number>> = { requests: {}, limits: {} };
    for (const c of list(p, 'spec', 'containers')) {
      for (const kind of ['requests', 'limits'] as const) {
        for (const [resource, q] of Object.entries(record(c, 'resources', kind))) {
          add(resource, kind, q);
          if (typeof q === 'string')
            podSums[kind]![resource] =
              (podSums[kind]![resource] ?? 0) + (resource === 'cpu' ? milliValue(q) : wholeValue(q));
        }
      }
    }
    const cell = (kind: 'requests' | 'limits', resource: string): string => {
      const v = podSums[kind]![resource];
      if (v === undefined) return resource === 'cpu' ? '0 (0%)' : '0 (0%)';
      return `${formatAmount(resource, v)} (${percentOf(resource, v, allocatable[resource])})`;
    };
    return [
      str(p, 'metadata', 'namespace') ?? '',
      str(p, 'metadata', 'name') ?? '',
      cell('requests', 'cpu'),
      cell('limits', 'cpu'),
      cell('requests', 'memory'),
      cell('limits', 'memory'),
      age(str(p, 'metadata', 'creationTimestamp'), now),
    ];
  });
  const out = [`Non-terminated Pods:          (${running.length} in total)`];
  if (rows.length) {
    const table = renderTable(
      ['Namespace', 'Name', 'CPU Requests', 'CPU Limits', 'Memory Requests', 'Memory Limits', 'Age'],
      rows,
    );
    out.push(
      ...table
        .trimEnd()
        .split('\n')
        .map((l) => `  ${l}`),
    );
  }
  out.push('Allocated resources:', '  (Total limits may be over 100 percent, i.e., overcommitted.)');
  const table = renderTable(
    ['Resource', 'Requests', 'Limits'],
    ['cpu', 'memory', 'ephemeral-storage'].map((resource) => {
      const s = sums[resource] ?? { requests: 0, limits: 0 };
      return [
        resource,
        `${formatAmount(resource, s.requests)} (${percentOf(resource, s.requests, allocatable[resource])})`,
        `${formatAmount(resource, s.limits)} (${percentOf(resource, s.limits, allocatable[resource])})`,
      ];
    }),
  );
  out.push(
    ...table
      .trimEnd()
      .split('\n')
      .map((l) => `  ${l}`),
  );
  return out;
}

function formatAmount(resource: string, value: number): string {
  if (resource === 'cpu') return value % 1000 === 0 ? String(value / 1000) : `${value}m`;
  if (value === 0) return '0';
  for (const [unit, size] of [
    ['Gi', 1024 ** 3],
    ['Mi', 1024 ** 2],
    ['Ki', 1024],
  ] as const)
    if (value % size === 0) return `${value / size}${unit}`;
  return String(value);
}

function percentOf(resource: string, value: number, allocatable: unknown): string {
  if (typeof allocatable !== 'string') return '0%';
  const total = resource === 'cpu' ? milliValue(allocatable) : wholeValue(allocatable);
  return total > 0 ? `${Math.floor((value * 100) / total)}%` : '0%';
}

function conditionLines(obj: ObjectJson): string[] {
  const conditions = list(obj, 'status', 'conditions');
  if (conditions.length === 0) return [];
  const table = renderTable(
    ['Type', 'Status', 'Reason', 'Message'],
    conditions.map((c) => [
      str(c, 'type') ?? '',
      str(c, 'status') ?? '',
      str(c, 'reason') ?? '',
      str(c, 'message') ?? '',
    ]),
  );
  return [
    'Conditions:',
    ...table
      .trimEnd()
      .split('\n')
      .map((l) => `  ${l}`),
  ];
}

function eventLines(events: ObjectJson[] | undefined, now: number): string[] {
  if (events === undefined) return [];
  if (events.length === 0) return ['Events:              <none>'];
  const sorted = [...events].sort(
    (a, b) => Date.parse(eventLastSeen(a) ?? '') - Date.parse(eventLastSeen(b) ?? ''),
  );
  const table = renderTable(
    ['Type', 'Reason', 'Age', 'From', 'Message'],
    sorted.map((e) => [
      str(e, 'type') || 'Normal',
      str(e, 'reason') ?? '',
      age(eventLastSeen(e), now),
      str(e, 'source', 'component') ?? '',
      (str(e, 'message') ?? '').replace(/\s*\n\s*/g, ' '),
    ]),
  );
  return [
    'Events:',
    ...table
      .trimEnd()
      .split('\n')
      .map((l) => `  ${l}`),
  ];
}

/**
 * The describe text. `events` undefined means events could not be listed (no Event support on
 * the server), which prints nothing rather than a misleading `<none>`.
 */
export function describeObject(
  obj: ObjectJson,
  events: ObjectJson[] | undefined,
  now: number,
  /** For a Node: the pods bound to it (its Non-terminated Pods and Allocated resources). */
  nodePods?: ObjectJson[],
): string {
  const annotations = { ...record(obj, 'metadata', 'annotations') };
  delete annotations[LAST_APPLIED_ANNOTATION];
  const header: Line[] = [['Name', str(obj, 'metadata', 'name') ?? '']];
  const ns = str(obj, 'metadata', 'namespace');
  if (ns) header.push(['Namespace', ns]);
  header.push(['Kind', `${str(obj, 'kind') ?? ''} (${str(obj, 'apiVersion') ?? ''})`]);
  header.push([
    'CreationTimestamp',
    `${str(obj, 'metadata', 'creationTimestamp') ?? '<unknown>'} (${age(str(obj, 'metadata', 'creationTimestamp'), now)} ago)`,
  ]);
  header.push(...mapLines('Labels', record(obj, 'metadata', 'labels')));
  header.push(...mapLines('Annotations', annotations));
  const deletion = str(obj, 'metadata', 'deletionTimestamp');
  if (deletion) header.push(['Terminating Since', deletion]);
  const owners = list(obj, 'metadata', 'ownerReferences');
  if (owners.length)
    header.push(['Controlled By', owners.map((o) => `${str(o, 'kind')}/${str(o, 'name')}`).join(', ')]);
  const finalizers = list(obj, 'metadata', 'finalizers');
  if (finalizers.length) header.push(['Finalizers', finalizers.map(String).join(', ')]);
  header.push(['UID', str(obj, 'metadata', 'uid') ?? '']);
  header.push(['ResourceVersion', str(obj, 'metadata', 'resourceVersion') ?? '']);
  const generation = num(obj, 'metadata', 'generation');
  if (generation !== undefined) header.push(['Generation', String(generation)]);
  return (
    [
      renderLines(header),
      ...kindLines(obj),
      ...conditionLines(obj),
      ...(nodePods ? nodePodLines(obj, nodePods, now) : []),
      ...eventLines(events, now),
    ].join('\n') + '\n'
  );
}
