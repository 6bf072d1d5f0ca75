/**
 * Per-kind table columns, as kubectl prints them: each kind names its printer in proto/kinds.ts.
 * A printer gives the columns after NAME and before AGE (AGE is added for every kind that has it),
 * those kubectl prints after AGE, and the extra `-o wide` columns, which go at the end. The CLI
 * prints tables with them (cli/output/table.ts); they take the JSON form of an object, so any
 * side that holds one can print it.
 */
import { age, humanDuration } from './age.js';
import { field, formatMap, formatSelector, list, name, num, record, str, type ObjectJson } from './fields.js';

export interface KindPrinter {
  columns: string[];
  /** `wide`: `-o wide` is on (kubectl shortens some cells otherwise). */
  cells(obj: ObjectJson, now: number, wide?: boolean): string[];
  wideColumns: string[];
  wideCells(obj: ObjectJson): string[];
  /** Columns kubectl prints after AGE (PriorityClass's PREEMPTIONPOLICY). */
  afterAge?: { columns: string[]; cells(obj: ObjectJson): string[] };
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

export const podPrinter: KindPrinter = {
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
  wideColumns: ['IP', 'NODE', 'NOMINATED NODE', 'READINESS GATES'],
  wideCells: (obj) => [
    str(obj, 'status', 'podIP') || NONE,
    str(obj, 'spec', 'nodeName') || NONE,
    str(obj, 'status', 'nominatedNodeName') || NONE,
    readinessGatesCell(obj),
  ],
};

/** kubectl's READINESS GATES: how many of the pod's gates have a True condition, of how many. */
function readinessGatesCell(pod: ObjectJson): string {
  const gates = list(pod, 'spec', 'readinessGates').map((gate) => str(gate, 'conditionType'));
  if (gates.length === 0) return NONE;
  const conditions = list(pod, 'status', 'conditions');
  const met = gates.filter((type) =>
    conditions.some((c) => str(c, 'type') === type && str(c, 'status') === 'True'),
  ).length;
  return `${met}/${gates.length}`;
}

export const deploymentPrinter: KindPrinter = {
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

export const replicaSetPrinter: KindPrinter = {
  columns: ['DESIRED', 'CURRENT', 'READY'],
  cells: (obj) => [
    String(num(obj, 'spec', 'replicas') ?? 1),
    String(num(obj, 'status', 'replicas') ?? 0),
    String(num(obj, 'status', 'readyReplicas') ?? 0),
  ],
  wideColumns: deploymentPrinter.wideColumns,
  wideCells: deploymentPrinter.wideCells,
};

export const daemonSetPrinter: KindPrinter = {
  columns: ['DESIRED', 'CURRENT', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'NODE SELECTOR'],
  cells: (obj) => [
    String(num(obj, 'status', 'desiredNumberScheduled') ?? 0),
    String(num(obj, 'status', 'currentNumberScheduled') ?? 0),
    String(num(obj, 'status', 'numberReady') ?? 0),
    String(num(obj, 'status', 'updatedNumberScheduled') ?? 0),
    String(num(obj, 'status', 'numberAvailable') ?? 0),
    formatMap(record(obj, 'spec', 'template', 'spec', 'nodeSelector')),
  ],
  wideColumns: deploymentPrinter.wideColumns,
  wideCells: deploymentPrinter.wideCells,
};

function jobStatus(obj: ObjectJson): string {
  for (const cond of list(obj, 'status', 'conditions')) {
    if (str(cond, 'status') !== 'True') continue;
    if (str(cond, 'type') === 'Complete') return 'Complete';
    if (str(cond, 'type') === 'Failed') return 'Failed';
  }
  return 'Running';
}

export const jobPrinter: KindPrinter = {
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

/** kubectl shortens a load balancer's addresses to this many characters, except with -o wide. */
const LOAD_BALANCER_WIDTH = 16;

/** The load balancer's addresses (IP, else hostname), sorted, each once. */
function loadBalancerAddresses(obj: ObjectJson, wide: boolean): string {
  const addresses = new Set<string>();
  for (const ingress of list(obj, 'status', 'loadBalancer', 'ingress')) {
    const address = str(ingress, 'ip') || str(ingress, 'hostname');
    if (address) addresses.add(address);
  }
  const joined = [...addresses].sort().join(',');
  return !wide && joined.length > LOAD_BALANCER_WIDTH
    ? `${joined.slice(0, LOAD_BALANCER_WIDTH - 3)}...`
    : joined;
}

/**
 * The EXTERNAL-IP column as kubectl fills it: external IPs for ClusterIP and NodePort, the load
 * balancer's addresses and the external IPs for LoadBalancer (`<pending>` while it has none), the
 * external name for ExternalName.
 */
export function serviceExternalIP(obj: ObjectJson, wide = false): string {
  const externalIPs = list(obj, 'spec', 'externalIPs').map(String);
  switch (str(obj, 'spec', 'type') || 'ClusterIP') {
    case 'ClusterIP':
    case 'NodePort':
      return externalIPs.join(',') || NONE;
    case 'LoadBalancer': {
      const balancer = loadBalancerAddresses(obj, wide);
      const all = [...(balancer ? balancer.split(',') : []), ...externalIPs];
      return all.join(',') || '<pending>';
    }
    case 'ExternalName':
      return str(obj, 'spec', 'externalName') ?? '';
    default:
      return '<unknown>';
  }
}

export const servicePrinter: KindPrinter = {
  columns: ['TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)'],
  cells: (obj, _now, wide) => [
    str(obj, 'spec', 'type') || 'ClusterIP',
    str(obj, 'spec', 'clusterIPs', 0) || str(obj, 'spec', 'clusterIP') || NONE,
    serviceExternalIP(obj, wide),
    servicePorts(obj),
  ],
  wideColumns: ['SELECTOR'],
  wideCells: (obj) => [formatMap(record(obj, 'spec', 'selector'))],
};

export const endpointsPrinter: KindPrinter = {
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
    return [abbreviated(all)];
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

export const configMapPrinter: KindPrinter = {
  columns: ['DATA'],
  cells: (obj) => [dataCount(obj)],
  wideColumns: [],
  wideCells: () => [],
};

export const secretPrinter: KindPrinter = {
  columns: ['TYPE', 'DATA'],
  cells: (obj) => [str(obj, 'type') || 'Opaque', dataCount(obj)],
  wideColumns: [],
  wideCells: () => [],
};

export const namespacePrinter: KindPrinter = {
  columns: ['STATUS'],
  cells: (obj) => [
    str(obj, 'metadata', 'deletionTimestamp') ? 'Terminating' : str(obj, 'status', 'phase') || 'Active',
  ],
  wideColumns: [],
  wideCells: () => [],
};

/** A memory quantity as a person reads it: 16329776Ki → 15.6Gi. */
function humanBytes(quantity: string | undefined): string {
  if (!quantity) return NONE;
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(quantity);
  if (!m) return quantity;
  const bytes = Number(m[1]) * { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] ?? '']!;
  for (const [unit, size] of [
    ['Gi', 1024 ** 3],
    ['Mi', 1024 ** 2],
    ['Ki', 1024],
  ] as const)
    if (bytes >= size) return `${(bytes / size).toFixed(bytes % size === 0 ? 0 : 1)}${unit}`;
  return String(bytes);
}

function nodeStatus(obj: ObjectJson): string {
  const ready = list(obj, 'status', 'conditions').find((c) => str(c, 'type') === 'Ready');
  const status =
    ready === undefined
      ? 'Unknown'
      : str(ready, 'status') === 'True'
        ? 'Ready'
        : // kubectl's word for False and for Unknown (the agent went silent) alike
          'NotReady';
  return field(obj, 'spec', 'unschedulable') === true ? `${status},SchedulingDisabled` : status;
}

export const nodePrinter: KindPrinter = {
  columns: ['STATUS', 'ROLES'],
  cells(obj) {
    const roles = Object.keys(record(obj, 'metadata', 'labels'))
      .filter((label) => label.startsWith('node-role.kubernetes.io/'))
      .map((label) => label.slice('node-role.kubernetes.io/'.length));
    return [nodeStatus(obj), roles.join(',') || NONE];
  },
  wideColumns: ['VERSION', 'INTERNAL-IP', 'OS-IMAGE', 'KERNEL', 'CPU', 'MEMORY', 'PODS'],
  wideCells: (obj) => [
    str(obj, 'status', 'nodeInfo', 'kubeletVersion') || NONE,
    str(
      list(obj, 'status', 'addresses').find((a) => str(a, 'type') === 'InternalIP'),
      'address',
    ) || NONE,
    str(obj, 'status', 'nodeInfo', 'osImage') || NONE,
    str(obj, 'status', 'nodeInfo', 'kernelVersion') || NONE,
    // what pods may take (allocatable), as the scheduler counts it
    str(obj, 'status', 'allocatable', 'cpu') || NONE,
    humanBytes(str(obj, 'status', 'allocatable', 'memory')),
    str(obj, 'status', 'allocatable', 'pods') || NONE,
  ],
};

export function eventLastSeen(obj: ObjectJson): string | undefined {
  return str(obj, 'lastTimestamp') || str(obj, 'eventTime') || str(obj, 'metadata', 'creationTimestamp');
}

export const eventPrinter: KindPrinter = {
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

export const cronJobPrinter: KindPrinter = {
  columns: ['SCHEDULE', 'TIMEZONE', 'SUSPEND', 'ACTIVE', 'LAST SCHEDULE'],
  cells: (obj, now) => {
    const last = str(obj, 'status', 'lastScheduleTime');
    return [
      str(obj, 'spec', 'schedule') ?? '',
      str(obj, 'spec', 'timeZone') || NONE,
      field(obj, 'spec', 'suspend') === true ? 'True' : 'False',
      String(list(obj, 'status', 'active').length),
      last ? age(last, now) : NONE,
    ];
  },
  wideColumns: ['CONTAINERS', 'IMAGES', 'SELECTOR'],
  wideCells: (obj) => [
    ...containerColumns(field(obj, 'spec', 'jobTemplate', 'spec', 'template', 'spec')),
    formatSelector(field(obj, 'spec', 'jobTemplate', 'spec', 'selector')),
  ],
};

export const leasePrinter: KindPrinter = {
  columns: ['HOLDER'],
  cells: (obj) => [str(obj, 'spec', 'holderIdentity') ?? ''],
  wideColumns: [],
  wideCells: () => [],
};

export const priorityClassPrinter: KindPrinter = {
  columns: ['VALUE', 'GLOBAL-DEFAULT'],
  cells: (obj) => [String(num(obj, 'value') ?? 0), field(obj, 'globalDefault') === true ? 'true' : 'false'],
  afterAge: {
    columns: ['PREEMPTIONPOLICY'],
    cells: (obj) => [str(obj, 'preemptionPolicy') || 'PreemptLowerPriority'],
  },
  wideColumns: [],
  wideCells: () => [],
};

/** At most three items, then how many more, as kubectl abbreviates endpoint lists. */
function abbreviated(items: string[]): string {
  if (items.length === 0) return NONE;
  return items.length > 3 ? `${items.slice(0, 3).join(',')} + ${items.length - 3} more...` : items.join(',');
}

export const endpointSlicePrinter: KindPrinter = {
  columns: ['ADDRESSTYPE', 'PORTS', 'ENDPOINTS'],
  cells: (obj) => {
    const ports = list(obj, 'ports').map((p) => String(num(p, 'port') ?? '<unset>'));
    const addresses = list(obj, 'endpoints').flatMap((e) => list(e, 'addresses').map(String));
    return [str(obj, 'addressType') ?? '', ports.join(',') || '<unset>', abbreviated(addresses)];
  },
  wideColumns: [],
  wideCells: () => [],
};

export const serviceAccountPrinter: KindPrinter = {
  columns: ['SECRETS'],
  cells: (obj) => [String(list(obj, 'secrets').length)],
  wideColumns: [],
  wideCells: () => [],
};
