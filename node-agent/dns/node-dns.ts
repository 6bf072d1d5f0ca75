/**
 * The node's cluster DNS, assembled: records kept from the node's Service informers, a server at
 * the address pods reach (the bridge gateway, port 53), unknown names forwarded to the node's
 * upstreams. The agent starts it once its pod network exists (../agent/main.ts).
 */
import type { Logger } from '../../proto/support/logger.js';
import type { ServiceInformers } from '../agent/service-informers.js';
import { ClusterRecords, type ClusterZone } from './cluster-records.js';
import { DnsServer } from './dns-server.js';
import { Forwarder } from './forwarder.js';
import { QueryHandler } from './query-handler.js';
import { ClusterRecordSync } from './record-sync.js';
import type { Upstream } from './upstreams.js';

export interface NodeDnsOptions {
  /** The node's Service and EndpointSlice informers; started and stopped by their owner. */
  informers: ServiceInformers;
  address: string;
  /** Default 53. */
  port?: number;
  /** The node's network namespace when it is not this process's own (`--host-netns`). */
  netnsPath?: string;
  zone: ClusterZone;
  upstreams: Upstream[];
  log: Logger;
}

export interface NodeDns {
  server: DnsServer;
  records: ClusterRecords;
  stop(): Promise<void>;
}

export async function startNodeDns(options: NodeDnsOptions): Promise<NodeDns> {
  const { log } = options;
  const records = new ClusterRecords(options.zone, Math.floor(Date.now() / 1000));
  const sync = new ClusterRecordSync(options.informers, records, options.zone.domain, log);
  const forwarder = new Forwarder({ upstreams: options.upstreams, log });
  const handler = new QueryHandler({ records, forward: (question) => forwarder.resolve(question) });
  const server = await DnsServer.listen({
    address: options.address,
    port: options.port ?? 53,
    ...(options.netnsPath !== undefined ? { netnsPath: options.netnsPath } : {}),
    handler,
    log,
  }).catch((err: unknown) => {
    forwarder.close();
    throw err;
  });
  sync.start();
  log.info(
    {
      address: `${options.address}:${server.port}`,
      domain: options.zone.domain,
      upstreams: options.upstreams.map((u) => `${u.address}:${u.port}`),
    },
    'cluster dns serving',
  );
  return {
    server,
    records,
    async stop() {
      await sync.stop();
      await server.close();
      forwarder.close();
    },
  };
}
