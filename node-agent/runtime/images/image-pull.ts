/**
 * The local image for a reference, pulled when the store lacks it (PodRuntime.ensureImage). The
 * puller is pluggable (../pod-runtime.ts ImagePuller; proto/oci/registry-client.ts is one) and
 * writes into the store through a lease (ImageStore.pull), so a prune meanwhile keeps what it
 * fetched. One pull per reference at a time in this process: whoever asks meanwhile waits for it.
 */
import { FailedPreconditionError, NotFoundError } from '../../../proto/errors.js';
import type { ImagePuller } from '../pod-runtime.js';
import type { ImageStore, ResolvedImage } from './image-store.js';

export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';

export class ImagePulls {
  private readonly inflight = new Map<string, Promise<ResolvedImage>>();

  constructor(
    private readonly store: ImageStore,
    private readonly puller?: ImagePuller,
  ) {}

  /**
   * The local image for `ref`, pulled per `policy` (Kubernetes' imagePullPolicy): IfNotPresent pulls
   * only what is missing, Always asks the registry every time (a moved tag is pulled anew; only
   * missing blobs travel), Never only looks locally.
   */
  async ensure(ref: string, policy: PullPolicy = 'IfNotPresent'): Promise<ResolvedImage> {
    try {
      if (policy !== 'Always') return await this.store.resolve(ref);
      if (!this.puller) return await this.store.resolve(ref);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      if (policy === 'Never') {
        throw new NotFoundError(
          `ensure image ${JSON.stringify(ref)}: it is not in the local store and the pull policy is Never`,
          { cause: err },
        );
      }
      if (!this.puller) {
        throw new NotFoundError(
          `ensure image ${JSON.stringify(ref)}: it is not in the local store, and this runtime has no image puller; import it (skiff runtime import)`,
          { cause: err },
        );
      }
    }
    let pulling = this.inflight.get(ref);
    if (!pulling) {
      pulling = this.pull(ref, this.puller).finally(() => this.inflight.delete(ref));
      this.inflight.set(ref, pulling);
    }
    return pulling;
  }

  private async pull(ref: string, puller: ImagePuller): Promise<ResolvedImage> {
    await this.store.pull(ref, puller);
    try {
      return await this.store.resolve(ref);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      throw new FailedPreconditionError(
        `pull image ${JSON.stringify(ref)}: the puller returned, but no image by that reference is in the local store (it must tag what it pulled)`,
        { cause: err },
      );
    }
  }
}
