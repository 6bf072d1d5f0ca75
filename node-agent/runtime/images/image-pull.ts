/**
 * The local image for a reference, pulled when the store lacks it (PodRuntime.ensureImage). The
 * puller is pluggable (../pod-runtime.ts ImagePuller; proto/oci/registry-client.ts is one) and
 * writes into the store through a lease (ImageStore.pull), so a prune meanwhile keeps what it
 * fetched. One pull per reference at a time in this process: whoever asks meanwhile waits for it.
 */
import { FailedPreconditionError, NotFoundError } from '../../../proto/errors.js';
import type { ImagePuller } from '../pod-runtime.js';
import type { ImageStore, ResolvedImage } from './image-store.js';

export class ImagePulls {
  private readonly inflight = new Map<string, Promise<ResolvedImage>>();

  constructor(
    private readonly store: ImageStore,
    private readonly puller?: ImagePuller,
  ) {}

  async ensure(ref: string): Promise<ResolvedImage> {
    try {
      return await this.store.resolve(ref);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
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
