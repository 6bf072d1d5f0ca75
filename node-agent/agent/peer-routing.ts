/**
 * The node's routes to the other nodes' pods, kept in step with the Node objects: an informer over
 * every Node (the node authorizer lets a node list and watch them all), and one key reconciled
 * whenever any Node changes (and on a resync): the peers are read back from the cache, whole, and
 * handed to the pod network (PodNetwork.routePeers), which diffs them against what the host shows.
 * Level-triggered: a missed event, an agent restart or a route removed by hand is put right by the
 * next reconcile. A peer that cannot be routed is said once (a warning and an Event on this node),
 * and again only when what is wrong changes.
 *
 *   Node informer ──► enqueue('peers') ──► reconcile: peersOf(cache) ──► routePeers ──► unrouted?
 *                                                                                   └─► Event
 */
import type { ApiClient } from '../../proto/client.js';
import type { Node } from '../../proto/gen/types.js';
import { apiSource } from '../../proto/informer/api-source.js';
import { Controller } from '../../proto/informer/controller.js';
import { Informer } from '../../proto/informer/informer.js';
import type { ReconcileResult } from '../../proto/informer/work-queue.js';
import { compareCodePoints } from '../../proto/support/code-point-order.js';
import type { Logger } from '../../proto/support/logger.js';
import type { Peer, UnroutedPeer } from '../runtime/net/peer-routes.js';

/** What routes the peers: the node's PodNetwork. */
export interface PeerRouter {
  routePeers(peers: readonly Peer[]): Promise<{ unrouted: UnroutedPeer[]; changes: number }>;
}

export interface PeerRoutingOptions {
  api: ApiClient;
  nodeName: string;
  router: PeerRouter;
  /** Records an Event on this node's Node. */
  event(type: 'Normal' | 'Warning', reason: string, message: string): void;
  /** Every Node handed to the reconcile again this often; default 60 s. */
  resyncMs?: number;
  log: Logger;
}

const KEY = 'peers';

/**
 * Every other Node that has a pod CIDR and an InternalIP, as a peer (sorted by name). A Node
 * without them yet is not routed until it has them (its next change brings it in).
 */
export function peersOf(nodes: readonly Node[], self: string): Peer[] {
  return nodes
    .flatMap((node) => {
      const name = node.metadata.name ?? '';
      const { podCIDR, address } = routingFields(node);
      return name !== self && podCIDR && address ? [{ node: name, podCIDR, address }] : [];
    })
    .sort((a, b) => compareCodePoints(a.node, b.node));
}

/** What of a Node routing follows: a change of anything else (its conditions, say) changes no route. */
function routingFields(node: Node | undefined): { podCIDR?: string; address?: string } {
  return {
    podCIDR: node?.spec?.podCIDR,
    address: node?.status?.addresses?.find((a) => a.type === 'InternalIP')?.address,
  };
}

/** Whether a Node's change can change a route (its pod CIDR or InternalIP changed). */
export function changesRoutes(before: Node | undefined, after: Node | undefined): boolean {
  const [b, a] = [routingFields(before), routingFields(after)];
  return b.podCIDR !== a.podCIDR || b.address !== a.address;
}

/** Peers named one by one in Events and logs: past that, one summary (a cluster of hollow nodes has thousands). */
const NAMED = 5;

/**
 * The Events that say which peers are newly unrouted: one per peer, or, past NAMED of them, one
 * that names the first few and counts the rest.
 */
export function unroutedNotices(
  fresh: readonly UnroutedPeer[],
): { type: 'Warning'; reason: string; message: string }[] {
  const notice = (message: string) => ({ type: 'Warning' as const, reason: 'NodeNotRouted', message });
  if (fresh.length <= NAMED)
    return fresh.map((u) => notice(`Pods of node ${u.node} are unreachable from here: ${u.reason}`));
  const named = fresh.slice(0, 3).map((u) => `${u.node} (${u.reason})`);
  return [
    notice(
      `Pods of ${fresh.length} nodes are unreachable from here: ${named.join('; ')}; and ${fresh.length - 3} more`,
    ),
  ];
}

export class PeerRouting {
  private readonly informer: Informer<Node>;
  private readonly controller: Controller;
  /** What was last said about unrouted peers (node → reason), so each is said once. */
  private reported = new Map<string, string>();

  constructor(private readonly options: PeerRoutingOptions) {
    this.informer = new Informer<Node>({
      source: apiSource<Node>({ api: options.api, kind: 'Node' }),
      resyncIntervalMs: options.resyncMs ?? 60_000,
      logger: options.log.child({ component: 'node-informer' }),
    });
    this.controller = new Controller({ reconcile: () => this.reconcile(), log: options.log });
    // a Node's status is written at every condition change: those need no route work
    this.informer.onChange((key, change, lastKnown) => {
      if (change === 'modified' && !changesRoutes(lastKnown?.object, this.informer.get(key)?.object)) return;
      this.controller.enqueue(KEY);
    });
  }

  /** Follows the Nodes: the first reconcile follows the first list (the agent does not wait for it). */
  start(): void {
    this.informer.start();
    this.controller.start();
    // whatever the list brings: a node deleted while the agent was away loses its routes now
    void this.informer.waitForSync().then(() => this.controller.enqueue(KEY));
  }

  async stop(): Promise<void> {
    this.informer.stop();
    await this.controller.stop();
  }

  private async reconcile(): Promise<ReconcileResult> {
    // a cache not yet listed would look like a cluster without peers: their routes would go
    if (!this.informer.hasSynced()) return { requeueAfterMs: 100 };
    const peers = peersOf(
      this.informer.list().map((c) => c.object),
      this.options.nodeName,
    );
    const { unrouted } = await this.options.router.routePeers(peers);
    const now = new Map(unrouted.map((u) => [u.node, u.reason]));
    const fresh = unrouted.filter((u) => this.reported.get(u.node) !== u.reason);
    for (const { type, reason, message } of unroutedNotices(fresh)) this.options.event(type, reason, message);
    if (fresh.length > 0)
      this.options.log.warn(
        { peers: fresh.slice(0, 50).map((u) => u.node), count: fresh.length, reason: fresh[0]!.reason },
        'nodes not routed',
      );
    this.reported = now;
  }
}
