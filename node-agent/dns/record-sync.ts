/**
 * ClusterRecordSync: keeps ClusterRecords equal to what the node's Service and EndpointSlice
 * informers hold (service-informers.ts, the pair the Service data plane shares). Handlers only
 * enqueue the Service's key (a slice's: the Service its `kubernetes.io/service-name` label names);
 * the reconcile re-reads the Service and its slices from the caches and replaces that Service's
 * records, so a change is in the answers as soon as the watch brings it (milliseconds).
 */
import { Controller } from '../../proto/informer/controller.js';
import type { Logger } from '../../proto/support/logger.js';
import { serviceKeyOfSlice } from '../../proto/endpoint-slices.js';
import { slicesOfService, type ServiceInformers } from '../agent/service-informers.js';
import { serviceRecords, type ClusterRecords } from './cluster-records.js';

export class ClusterRecordSync {
  private readonly controller: Controller;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly informers: ServiceInformers,
    private readonly records: ClusterRecords,
    private readonly domain: string,
    log: Logger,
  ) {
    this.controller = new Controller({
      reconcile: async (key) => this.reconcile(key),
      log,
    });
  }

  /** Follows the informers (which the caller starts and stops: they are shared). */
  start(): void {
    this.unsubscribe.push(
      this.informers.services.onChange((key) => this.controller.enqueue(key)),
      this.informers.endpointSlices.onChange((key, _change, lastKnown) => {
        const slice = this.informers.endpointSlices.get(key)?.object ?? lastKnown?.object;
        const service = slice && serviceKeyOfSlice(slice);
        if (service !== undefined) this.controller.enqueue(service);
      }),
    );
    // what the caches held before this subscribed
    for (const { key } of this.informers.services.list()) this.controller.enqueue(key);
    for (const key of this.records.serviceKeys()) this.controller.enqueue(key);
    this.controller.start();
  }

  async stop(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    await this.controller.stop();
  }

  private reconcile(key: string): void {
    const service = this.informers.services.get(key)?.object;
    if (service === undefined) {
      this.records.setService(key, undefined);
      return;
    }
    const slices = slicesOfService(this.informers, key);
    this.records.setService(key, serviceRecords(service, slices, this.domain));
  }
}
