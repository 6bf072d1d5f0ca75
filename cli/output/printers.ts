/**
 * Per-kind table columns for `skiff get`, as kubectl prints them. Each printer gives the columns
 * after NAME and before AGE (AGE is added for every kind that has it), and the extra `-o wide`
 * columns, which go at the end.
 */
import { age, humanDuration } from './age.js';
import { field, formatMap, formatSelector, list, name, num, record, str, type ObjectJson } from './fields.js';

export interface KindPrinter {
  columns: string[];
  cells(obj: ObjectJson, now: number): string[];
  wideColumns: string[];
  wideCells(obj: ObjectJson): string[];
  /** Events show LAST SEEN up front instead of NAME and AGE. */
  nameless?: boolean;
}

const NONE = '<none>';

function containersOf(podSpec: unknown): unknown[] {
  return list(podSpec, 'containers');
}

function containerColumns(podSpec: unknown): string[] {
  const containers = containersOf(podSpec);
  return [
    containers.map((c) => str(c, 'name') ?? '').join(',') || NONE,
    containers.map((c) => str(c, 'image') ?? '').join(',') || NONE,
  ];
}

/** The pod STATUS column: kubectl's reason precedence, simplified to what skiff reports. */
export function podStatus(pod: ObjectJson): string {
  if (str(pod, 'metadata', 'deletionTimestamp')) return 'Terminating';
  let reason = str(pod, 'status', 'reason') ?? str(pod, 'status', 'phase') ?? 'Pending';
  const initStatuses = list(pod, 'status', 'initContainerStatuses');
  for (const [i, cs] of initStatuses.entries()) {
    if (num(cs, 'state', 'terminated', 'exitCode') === 0) continue;
    const waiting = str(cs, 'state', 'waiting', 'reason');
    const terminated = str(cs, 'state', 'terminated', 'reason');
    if (terminated) return `Init:${terminated}`;
    if (waiting && waiting !== 'PodInitializing') return `Init:${waiting}`;
    return `Init:${i}/${list(pod, 'spec', 'initContainers').length}`;
  }
  for (const cs of list(pod, 'status', 'containerStatuses')) {
    const waiting = str(cs, 'state', 'waiting', 'reason');
    const terminated = str(cs, 'state', 'terminated', 'reason');
    if (waiting) reason = waiting;
    else if (terminated) reason = terminated;
  }
  return reason;
}

const pod: KindPrinter = {
  columns: ['READY', 'STATUS', 'RESTARTS'],
  cells(obj, now) {
    const statuses = list(obj, 'status', 'containerStatuses');
    const ready = statuses.filter((cs) => field(cs, 'ready') === true).length;
    const total = containersOf(field(obj, 'spec')).length;
    let restarts = 0;
    let lastRestart: number | undefined;
    for (const cs of statuses) {
      restarts += num(cs, 'restartCount') ?? 0;
      const finished = Date.parse(str(cs, 'lastState', 'terminated', 'finishedAt') ?? '');
      if (!Number.isNaN(finished)) lastRestart = Math.max(lastRestart ?? 0, finished);
    }
    const restartCell =
      restarts > 0 && lastRestart !== undefined
        ? `${restarts} (${humanDuration(now - lastRestart)} ago)`
        : String(restarts);
    return [`${ready}/${total}`, podStatus(obj), restartCell];
  },
  wideColumns: ['IP', 'NODE'],
  wideCells: (obj) => [str(obj, 'status', 'podIP') || NONE, str(obj, 'spec', 'nodeName') || NONE],
};

const deployment: KindPrinter = {
  columns: ['READY', 'UP-TO-DATE', 'AVAILABLE'],
  cells: (obj) => [
    `${num(obj, 'status', 'readyReplicas') ?? 0}/${num(obj, 'spec', 'replicas') ?? 1}`,
    String(num(obj, 'status', 'updatedReplicas') ?? 0),
    String(num(obj, 'status', 'availableReplicas') ?? 0),
  ],
  wideColumns: ['CONTAINERS', 'IMAGES', 'SELECTOR'],
  wideCells: (obj) => [
    ...containerColumns(field(obj, 'spec', 'template', 'spec')),
    formatSelector(field(obj, 'spec', 'selector')),
  ],
};

const replicaSet: KindPrinter = {
  columns: ['DESIRED', 'CURRENT', 'READY'],
  cells: (obj) => [
    String(num(obj, 'spec', 'replicas') ?? 1),
    String(num(obj, 'status', 'replicas') ?? 0),
    String(num(obj, 'status', 'readyReplicas') ?? 0),
  ],
  wideColumns: deployment.wideColumns,
  wideCells: deployment.wideCells,
};

const daemonSet: KindPrinter = {
  columns: ['DESIRED', 'CURRENT', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'NODE SELECTOR'],
  cells: (obj) => [
    String(num(obj, 'status', 'desiredNumberScheduled') ?? 0),
    String(num(obj, 'status', 'currentNumberScheduled') ?? 0),
    String(num(obj, 'status', 'numberReady') ?? 0),
    String(num(obj, 'status', 'updatedNumberScheduled') ?? 0),
    String(num(obj, 'status', 'numberAvailable') ?? 0),
    formatMap(record(obj, 'spec', 'template', 'spec', 'nodeSelector')),
  ],
  wideColumns: deployment.wideColumns,
  wideCells: deployment.wideCells,
};

function jobStatus(obj: ObjectJson): string {
  for (const cond of list(obj, 'status', 'conditions')) {
    if (str(cond, 'status') !== 'True') continue;
    if (str(cond, 'type') === 'Complete') return 'Complete';
    if (str(cond, 'type') === 'Failed') return 'Failed';
  }
  return 'Running';
}

const job: KindPrinter = {
  columns: ['STATUS', 'COMPLETIONS', 'DURATION'],
  cells(obj, now) {
    const start = Date.parse(str(obj, 'status', 'startTime') ?? '');
    const end = Date.parse(str(obj, 'status', 'completionTime') ?? '');
    const duration = Number.isNaN(start) ? '' : humanDuration((Number.isNaN(end) ? now : end) - start);
    return [
      jobStatus(obj),
      `${num(obj, 'status', 'succeeded') ?? 0}/${num(obj, 'spec', 'completions') ?? 1}`,
      duration,
    ];
  },
  wideColumns: ['CONTAINERS', 'IMAGES', 'SELECTOR'],
  wideCells: (obj) => [
    ...containerColumns(field(obj, 'spec', 'template', 'spec')),
    formatSelector(field(obj, 'spec', 'selector')),
  ],
};

function servicePorts(obj: ObjectJson): string {
  const ports = list(obj, 'spec', 'ports').map((p) => {
    const nodePort = num(p, 'nodePort');
    return `${num(p, 'port') ?? ''}${nodePort ? `:${nodePort}` : ''}/${str(p, 'protocol') ?? 'TCP'}`;
  });
  return ports.join(',') || NONE;
}

const service: KindPrinter = {
  columns: ['TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)'],
  cells: (obj) => [
    str(obj, 'spec', 'type') || 'ClusterIP',
    str(obj, 'spec', 'clusterIP') || NONE,
    list(obj, 'spec', 'externalIPs').map(String).join(',') || NONE,
    servicePorts(obj),
  ],
  wideColumns: ['SELECTOR'],
  wideCells: (obj) => [formatMap(record(obj, 'spec', 'selector'))],
};

const endpoints: KindPrinter = {
  columns: ['ENDPOINTS'],
  cells(obj) {
    const all: string[] = [];
    for (const subset of list(obj, 'subsets')) {
      const ports = list(subset, 'ports').map((p) => num(p, 'port'));
      for (const address of list(subset, 'addresses')) {
        const ip = str(address, 'ip') ?? '';
        if (ports.length === 0) all.push(ip);
        for (const port of ports) all.push(`${ip}:${port ?? ''}`);
      }
    }
    if (all.length === 0) return [NONE];
    return [all.length > 3 ? `${all.slice(0, 3).join(',')} + ${all.length - 3} more...` : all.join(',')];
  },
  wideColumns: [],
  wideCells: () => [],
};

const dataCount = (obj: ObjectJson): string =>
  String(
    Object.keys(record(obj, 'data')).length +
      Object.keys(record(obj, 'binaryData')).length +
      Object.keys(record(obj, 'stringData')).length,
  );

const configMap: KindPrinter = {
  columns: ['DATA'],
  cells: (obj) => [dataCount(obj)],
  wideColumns: [],
  wideCells: () => [],
};

const secret: KindPrinter = {
  columns: ['TYPE', 'DATA'],
  cells: (obj) => [str(obj, 'type') || 'Opaque', dataCount(obj)],
  wideColumns: [],
  wideCells: () => [],
};

const namespaceKind: KindPrinter = {
  columns: ['STATUS'],
  cells: (obj) => [
    str(obj, 'metadata', 'deletionTimestamp') ? 'Terminating' : str(obj, 'status', 'phase') || 'Active',
  ],
  wideColumns: [],
  wideCells: () => [],
};

function nodeStatus(obj: ObjectJson): string {
  const ready = list(obj, 'status', 'conditions').find((c) => str(c, 'type') === 'Ready');
  const status =
    ready === undefined
      ? 'Unknown'
      : str(ready, 'status') === 'True'
        ? 'Ready'
        : str(ready, 'status') === 'False'
          ? 'NotReady'
          : 'Unknown';
  return field(obj, 'spec', 'unschedulable') === true ? `${status},SchedulingDisabled` : status;
}

const node: KindPrinter = {
  columns: ['STATUS', 'ROLES'],
  cells(obj) {
    const roles = Object.keys(record(obj, 'metadata', 'labels'))
      .filter((label) => label.startsWith('node-role.kubernetes.io/'))
      .map((label) => label.slice('node-role.kubernetes.io/'.length));
    return [nodeStatus(obj), roles.join(',') || NONE];
  },
  wideColumns: ['VERSION', 'INTERNAL-IP', 'OS-IMAGE', 'KERNEL-VERSION', 'CONTAINER-RUNTIME'],
  wideCells: (obj) => [
    str(obj, 'status', 'nodeInfo', 'kubeletVersion') || NONE,
    str(
      list(obj, 'status', 'addresses').find((a) => str(a, 'type') === 'InternalIP'),
      'address',
    ) || NONE,
    str(obj, 'status', 'nodeInfo', 'osImage') || NONE,
    str(obj, 'status', 'nodeInfo', 'kernelVersion') || NONE,
    str(obj, 'status', 'nodeInfo', 'containerRuntimeVersion') || NONE,
  ],
};

export function eventLastSeen(obj: ObjectJson): string | undefined {
  return str(obj, 'lastTimestamp') || str(obj, 'eventTime') || str(obj, 'metadata', 'creationTimestamp');
}

const event: KindPrinter = {
  nameless: true,
  columns: ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE'],
  cells: (obj, now) => [
    age(eventLastSeen(obj), now),
    str(obj, 'type') || 'Normal',
    str(obj, 'reason') || '',
    `${(str(obj, 'involvedObject', 'kind') ?? '').toLowerCase()}/${str(obj, 'involvedObject', 'name') ?? ''}`,
    (str(obj, 'message') ?? '').replace(/\s*\n\s*/g, ' '),
  ],
  wideColumns: ['SOURCE', 'COUNT'],
  wideCells: (obj) => [str(obj, 'source', 'component') || '', String(num(obj, 'count') ?? 1)],
};

const generic: KindPrinter = { columns: [], cells: () => [], wideColumns: [], wideCells: () => [] };

const PRINTERS: Record<string, KindPrinter> = {
  Pod: pod,
  Deployment: deployment,
  ReplicaSet: replicaSet,
  DaemonSet: daemonSet,
  Job: job,
  Service: service,
  Endpoints: endpoints,
  ConfigMap: configMap,
  Secret: secret,
  Namespace: namespaceKind,
  Node: node,
  Event: event,
};

export function printerFor(kind: string): KindPrinter {
  return PRINTERS[kind] ?? generic;
}

export interface TableOptions {
  wide: boolean;
  /** Adds NAMESPACE first (`-A`). */
  withNamespace: boolean;
  /** Prefixes names with `kind.group/` (kubectl does so when several kinds are printed). */
  namePrefix?: string;
}

/** Headers and rows for objects of one kind. */
export function tableFor(
  kind: string,
  objects: ObjectJson[],
  options: TableOptions,
  now: number,
): { headers: string[]; rows: string[][] } {
  const printer = printerFor(kind);
  const headers = [
    ...(options.withNamespace ? ['NAMESPACE'] : []),
    ...(printer.nameless ? [] : ['NAME']),
    ...printer.columns,
    ...(printer.nameless ? [] : ['AGE']),
    ...(options.wide ? printer.wideColumns : []),
  ];
  const rows = objects.map((obj) => rowFor(printer, obj, options, now));
  return { headers, rows };
}

export function rowFor(printer: KindPrinter, obj: ObjectJson, options: TableOptions, now: number): string[] {
  return [
    ...(options.withNamespace ? [str(obj, 'metadata', 'namespace') ?? ''] : []),
    ...(printer.nameless ? [] : [`${options.namePrefix ?? ''}${name(obj)}`]),
    ...printer.cells(obj, now),
    ...(printer.nameless ? [] : [age(str(obj, 'metadata', 'creationTimestamp'), now)]),
    ...(options.wide ? printer.wideCells(obj) : []),
  ];
}
