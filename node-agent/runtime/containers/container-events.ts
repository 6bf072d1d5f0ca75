/**
 * The containers' event stream (../pod-runtime.ts ContainerWatch): created, started, exited,
 * removed, for any number of watches, whoever made the change (this process, another one, or a
 * shim recording an exit).
 *
 * Level-triggered: the hub keeps the last state it saw of every container, and whenever something
 * may have changed it re-reads the containers concerned and emits the difference. It learns of
 * changes from inotify on `<root>/containers` (records made and removed) and on the directory of
 * every container not yet exited (config.json, state.json, and exit.json from the shim), and from
 * a resync every `resyncMs` for what writes nothing: the directory listed again, and every
 * container the source says may have changed unannounced (a running one whose shim died) re-read.
 * Every `fullResyncMs` the resync re-reads them all, in case inotify missed something (its queue
 * overflowed). Re-reading a running container settles its exit (LinuxContainerRuntime.refresh), so
 * an exit is an event without anyone waiting for it.
 *
 * A watch brings the hub up to date, then takes the list and registers itself in one turn of the
 * event loop: a change either is in the list or comes after it as an event. The hub watches the
 * disk only while a watch is open.
 */
import { watch, type FSWatcher } from 'node:fs';
import { NotFoundError, ResourceExhaustedError, errorMessage } from '../../../proto/errors.js';
import { componentLogger } from '../../../proto/support/logger.js';
import { EventQueue } from '../../../proto/support/event-queue.js';
import type {
  ContainerEvent,
  ContainerEventType,
  ContainerSelector,
  ContainerWatch,
} from '../pod-runtime.js';
import type { ContainerInfo } from './container-runtime.js';
import { ID_RE, exitInfo, type ContainerConfig, type ContainerState } from './state.js';

const log = componentLogger('container-events');

/** Where the hub reads containers from (LinuxContainerRuntime gives its store and refresh). */
export interface ContainerSource {
  /** `<root>/containers`: one directory per container, named by its id. */
  dir: string;
  ids(): Promise<string[]>;
  /** The container now, its exit settled; NotFoundError once it is gone. */
  read(id: string): Promise<ContainerInfo>;
  /**
   * Whether a container last seen as `info` may have changed without writing its records (a
   * running container whose shim is gone): a check cheap enough for every resync.
   */
  changedUnannounced(info: ContainerInfo): boolean;
}

export interface ContainerEventHubOptions {
  /** How often the directory is listed and the containers changed unannounced re-read (default 2 s). */
  resyncMs?: number;
  /** How often every container is re-read whatever inotify said (default 60 s). */
  fullResyncMs?: number;
  /** Events a watch may have queued before it is ended (default 10,000). */
  maxBacklog?: number;
}

/** The events that take a container from `before` (undefined: not seen yet) to `after`, in order. */
export function transitions(before: ContainerState | undefined, after: ContainerState): ContainerEventType[] {
  const out: ContainerEventType[] = [];
  if (before === undefined) out.push('created');
  // a failed start exits without having started
  if (after.startedAt !== undefined && before?.startedAt === undefined) out.push('started');
  if (after.status === 'exited' && before?.status !== 'exited') out.push('exited');
  return out;
}

/** Whether a container of `config` is one `selector` asks for (only its record's config counts). */
export function selects(selector: ContainerSelector, config: ContainerConfig): boolean {
  if (selector.kind !== undefined && config.kind !== selector.kind) return false;
  if (selector.sandbox !== undefined && config.sandbox !== selector.sandbox) return false;
  for (const [key, value] of Object.entries(selector.labels ?? {})) {
    if (!Object.hasOwn(config.labels, key) || config.labels[key] !== value) return false;
  }
  return true;
}

/** The files of a container's directory whose change may be an event. */
const RECORD_FILES = new Set(['config.json', 'state.json', 'exit.json']);

/** A watch of the hub: what it selects, and the queue its reader takes events from. */
interface Subscriber {
  readonly selector: ContainerSelector;
  readonly queue: EventQueue<ContainerEvent>;
  /** Ends the watch: the hub stops delivering to it. */
  readonly close: () => void;
}

export class ContainerEventHub {
  private readonly resyncMs: number;
  private readonly fullResyncMs: number;
  /** When the last resync that re-read every container began (performance.now()). */
  private lastFullResync = 0;
  private readonly maxBacklog: number;
  /** Watches open or opening: the disk is watched while there is one. */
  private watches = 0;
  /** Watches past their list, which get the events. */
  private readonly subscribers = new Set<Subscriber>();
  /** The last state seen of every container. */
  private readonly known = new Map<string, ContainerInfo>();
  private seq = 0;
  private rootWatcher: FSWatcher | undefined;
  private readonly dirWatchers = new Map<string, FSWatcher>();
  private resyncTimer: NodeJS.Timeout | undefined;
  /** Re-reads run one at a time, in order, so events of one container never cross. */
  private chain: Promise<void> = Promise.resolve();
  private readonly queuedIds = new Set<string>();
  private queuedAll: Promise<void> | undefined;
  private queuedResync: Promise<void> | undefined;

  constructor(
    private readonly source: ContainerSource,
    options: ContainerEventHubOptions = {},
  ) {
    this.resyncMs = options.resyncMs ?? 2000;
    this.fullResyncMs = options.fullResyncMs ?? 60_000;
    this.maxBacklog = options.maxBacklog ?? 10_000;
  }

  async watch(selector: ContainerSelector = {}): Promise<ContainerWatch> {
    // counted before the first await, so a watch closed meanwhile cannot stop the disk watch under it
    if (++this.watches === 1) {
      try {
        this.startWatching();
      } catch (err) {
        this.release();
        throw err;
      }
    }
    try {
      await this.syncAll();
    } catch (err) {
      this.release();
      throw err;
    }
    // one turn from here on: the list and the registration see the same events
    const maxBacklog = this.maxBacklog;
    const subscriber: Subscriber = {
      selector,
      queue: new EventQueue<ContainerEvent>(
        { events: maxBacklog, bytes: Infinity },
        () => 0,
        () =>
          new ResourceExhaustedError(
            `watch containers: the consumer fell more than ${maxBacklog} events behind; watch again (the new watch lists what is current)`,
          ),
      ),
      close: () => close(),
    };
    this.subscribers.add(subscriber);
    const containers = [...this.known.values()].filter((info) => selects(selector, info.config));
    const revision = this.seq;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      subscriber.queue.end();
      this.subscribers.delete(subscriber);
      this.release();
    };
    return {
      containers,
      revision,
      close,
      [Symbol.asyncIterator]: () => ({
        next: () => subscriber.queue.next(),
        return: async () => {
          close();
          return { done: true, value: undefined };
        },
      }),
    };
  }

  private release(): void {
    if (--this.watches === 0) this.stopWatching();
  }

  private startWatching(): void {
    this.rootWatcher = watch(this.source.dir, (_event, name) => {
      if (typeof name === 'string' && ID_RE.test(name)) this.syncOne(name);
    });
    this.rootWatcher.on('error', (err) => {
      log.warn({ dir: this.source.dir, err: errorMessage(err) }, 'watching containers failed; resyncing');
      this.syncAll().catch(() => {});
    });
    this.resyncTimer = setInterval(() => this.resync().catch(() => {}), this.resyncMs);
    this.resyncTimer.unref();
  }

  private stopWatching(): void {
    this.rootWatcher?.close();
    this.rootWatcher = undefined;
    clearInterval(this.resyncTimer);
    for (const watcher of this.dirWatchers.values()) watcher.close();
    this.dirWatchers.clear();
    // nothing reads it until the next watch, which re-reads every container first
    this.known.clear();
  }

  /** Watches a container's directory for its record files; false when the directory is gone. */
  private watchDir(id: string): boolean {
    if (this.dirWatchers.has(id)) return true;
    let watcher: FSWatcher;
    try {
      watcher = watch(`${this.source.dir}/${id}`, (_event, name) => {
        if (typeof name === 'string' && RECORD_FILES.has(name)) this.syncOne(id);
      });
    } catch {
      return false;
    }
    // the directory was removed: the root watcher, or the resync, tells
    watcher.on('error', () => this.unwatchDir(id));
    this.dirWatchers.set(id, watcher);
    return true;
  }

  private unwatchDir(id: string): void {
    this.dirWatchers.get(id)?.close();
    this.dirWatchers.delete(id);
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    const run = this.chain.then(work);
    this.chain = run.catch((err) =>
      log.warn({ err: errorMessage(err) }, 'reading containers for events failed; the resync retries'),
    );
    return run;
  }

  /** Re-reads every container (coalesced with a re-read already queued and not yet begun). */
  private syncAll(): Promise<void> {
    this.queuedAll ??= this.enqueue(async () => {
      this.queuedAll = undefined;
      if (this.watches === 0) return;
      this.lastFullResync = performance.now();
      await this.readIds(() => true);
    });
    return this.queuedAll;
  }

  /**
   * The periodic resync: every container re-read each `fullResyncMs`, else only those new to the
   * hub or changed unannounced, so an idle node with many containers reads little more than /proc.
   */
  private resync(): Promise<void> {
    if (performance.now() - this.lastFullResync >= this.fullResyncMs) return this.syncAll();
    this.queuedResync ??= this.enqueue(async () => {
      this.queuedResync = undefined;
      if (this.watches === 0) return;
      await this.readIds((before) => before === undefined || this.source.changedUnannounced(before));
    });
    return this.queuedResync;
  }

  /** Lists the containers: those gone are removed, those `selected` (by their last state) re-read. */
  private async readIds(selected: (before: ContainerInfo | undefined) => boolean): Promise<void> {
    const ids = await this.source.ids();
    const present = new Set(ids);
    for (const id of [...this.known.keys()]) if (!present.has(id)) this.removed(id);
    for (const id of ids) if (selected(this.known.get(id))) await this.readOne(id);
  }

  private syncOne(id: string): void {
    if (this.queuedIds.has(id)) return;
    this.queuedIds.add(id);
    this.enqueue(async () => {
      this.queuedIds.delete(id);
      if (this.watches > 0) await this.readOne(id);
    }).catch(() => {});
  }

  private async readOne(id: string): Promise<void> {
    // the last watch closed during a resync: nothing more to watch or to tell
    if (this.watches === 0) return;
    const before = this.known.get(id);
    // watched before it is read: a change after the read is then always noticed
    const present = before?.state.status === 'exited' || this.watchDir(id);
    let info: ContainerInfo | undefined;
    if (present) {
      try {
        info = await this.source.read(id);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
        // a record half made (the directory before config.json) is read again when config.json comes
        if (before === undefined) return;
      }
      if (this.watches === 0) {
        this.unwatchDir(id);
        return;
      }
    }
    if (!info) {
      this.removed(id);
      return;
    }
    this.known.set(id, info);
    for (const type of transitions(before?.state, info.state)) this.emit(type, info);
    if (info.state.status === 'exited') this.unwatchDir(id);
  }

  private removed(id: string): void {
    const last = this.known.get(id);
    this.unwatchDir(id);
    if (!last) return;
    this.known.delete(id);
    this.emit('removed', last);
  }

  private emit(type: ContainerEventType, container: ContainerInfo): void {
    const event: ContainerEvent = { seq: ++this.seq, type, time: new Date().toISOString(), container };
    if (type === 'exited') event.exit = exitInfo(container.state);
    for (const subscriber of [...this.subscribers]) {
      if (!selects(subscriber.selector, container.config)) continue;
      // one more than the backlog fails the watch (its reader gets the error after what it took)
      subscriber.queue.push(event);
      if (subscriber.queue.failIfBehind()) subscriber.close();
    }
  }
}
