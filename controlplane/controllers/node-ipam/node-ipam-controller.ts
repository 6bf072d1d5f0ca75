/**
 * Node IPAM: gives each Node a pod CIDR (`spec.podCIDR`, `spec.podCIDRs`) from the cluster CIDR,
 * a /24 each by default, as Kubernetes' node-ipam controller (range allocator) does. A CIDR is
 * never given twice: the used set is read from every Node the informer holds, and one worker
 * allocates, so two nodes added at once get different ones. A full cluster CIDR is logged and
 * retried (a node that goes frees its range).
 */
import { DEFAULT_CLUSTER_CIDR } from '../../../proto/network-plan.js';
import { ConflictError, NotFoundError } from '../../../proto/errors.js';
import type { Node } from '../../../proto/gen/types.js';
import { parseCidr, subnet, subnetCount, type Cidr } from '../../../proto/cidr.js';
import { Controller } from '../../../proto/informer/controller.js';
import type { Informer } from '../../../proto/informer/informer.js';
import type { ReconcileResult } from '../../../proto/informer/work-queue.js';
import type { Logger } from '../../../proto/support/logger.js';
import type { ApiHandlers } from '../../api/handlers.js';

export interface NodeIpamOptions {
  handlers: ApiHandlers;
  nodes: Informer<Node>;
  /** Default 10.244.0.0/16. */
  clusterCIDR?: string;
  /** Prefix length of each node's range; default 24. */
  nodeMaskSize?: number;
  log: Logger;
}

export class NodeIpamController {
  private readonly controller: Controller;
  private readonly block: Cidr;
  private readonly mask: number;
  private stopHandler: (() => void) | undefined;

  constructor(private readonly options: NodeIpamOptions) {
    this.block = parseCidr(options.clusterCIDR ?? DEFAULT_CLUSTER_CIDR, '--cluster-cidr');
    this.mask = options.nodeMaskSize ?? 24;
    if (this.mask < this.block.prefix || this.mask > 30)
      throw new Error(
        `--node-cidr-mask-size ${this.mask} must be between the cluster CIDR's prefix (${this.block.prefix}) and 30`,
      );
    this.controller = new Controller({
      reconcile: (name) => this.reconcile(name),
      workers: 1,
      log: options.log,
    });
  }

  start(): void {
    this.stopHandler = this.options.nodes.onChange((key, change) => {
      if (change !== 'deleted') this.controller.enqueue(key);
    });
    for (const cached of this.options.nodes.list()) this.controller.enqueue(cached.key);
    this.controller.start();
  }

  async stop(): Promise<void> {
    this.stopHandler?.();
    await this.controller.stop();
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    const { handlers, nodes, log } = this.options;
    let node: Node;
    try {
      node = (await handlers.get('Node', '', name)).object as Node;
    } catch (err) {
      if (err instanceof NotFoundError) return;
      throw err;
    }
    if (node.spec?.podCIDR) return;
    const used = new Set(
      nodes
        .list()
        .map((c) => c.object.spec?.podCIDR)
        .filter(Boolean),
    );
    const count = subnetCount(this.block, this.mask);
    let chosen: string | undefined;
    for (let i = 0; i < count; i++) {
      const candidate = subnet(this.block, this.mask, i).text;
      if (!used.has(candidate)) {
        chosen = candidate;
        break;
      }
    }
    if (!chosen) {
      log.error(
        { node: name, clusterCIDR: this.block.text },
        'no pod CIDR left for the node: the cluster CIDR is full',
      );
      return { requeueAfterMs: 30_000 };
    }
    try {
      await handlers.update({ ...node, spec: { ...node.spec, podCIDR: chosen, podCIDRs: [chosen] } });
      log.info({ node: name, podCIDR: chosen }, 'pod CIDR assigned');
    } catch (err) {
      if (err instanceof ConflictError) return { requeueAfterMs: 0 };
      throw err;
    }
    // the informer sees the write before the next allocation looks at the used set
    await waitFor(() => nodes.get(name)?.object.spec?.podCIDR === chosen, 5000);
  }
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
}
