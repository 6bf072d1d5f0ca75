/**
 * ApiObject: an object as the API handlers hand it out, in whichever form the caller needs.
 *
 * Most objects the API returns come straight from the store as protobuf bytes, and most leave it
 * again as protobuf on the wire. Converting them to the Kubernetes JSON shape and back on the way
 * (decodeObject, then toEnvelope) is the costliest step of a list, so the wire form is built from
 * the stored bytes directly (a generated decode, the resourceVersion set on the message), and the
 * KubeObject is decoded only when something asks for it (selectors, the namespace controller).
 * Both forms describe the same object: the bytes are what encodeObject wrote for it.
 */
import type { KubeObject } from '../../proto/gen/types.js';
import type { KindInfo } from '../../proto/kinds.js';
import { decodeObject, envelopeBytesWithResourceVersion, toEnvelope } from '../../proto/objects.js';

export class ApiObject {
  private kube: KubeObject | undefined;
  private responseBytes: Uint8Array | undefined;

  private constructor(
    readonly info: KindInfo,
    readonly resourceVersion: string,
    private readonly bytes: Uint8Array | undefined,
    kube: KubeObject | undefined,
  ) {
    this.kube = kube;
  }

  /** An object from its stored bytes (what encodeObject wrote) and its mod revision. */
  static fromStored(
    info: KindInfo,
    bytes: Uint8Array,
    resourceVersion: string,
    kube?: KubeObject,
  ): ApiObject {
    return new ApiObject(info, resourceVersion, bytes, kube);
  }

  /** An object that exists only in the Kubernetes shape (its resourceVersion already set). */
  static fromObject(info: KindInfo, kube: KubeObject): ApiObject {
    return new ApiObject(info, kube.metadata.resourceVersion ?? '', undefined, kube);
  }

  /** The Kubernetes-shaped object, with metadata.resourceVersion set. Decoded once, on first use. */
  get object(): KubeObject {
    if (this.kube === undefined) {
      this.kube = decodeObject(this.info.kind, this.bytes!);
      this.kube.metadata.resourceVersion = this.resourceVersion;
    }
    return this.kube;
  }

  /**
   * The `Object` envelope as a whole response: its wire bytes made from the stored bytes when
   * there are some (what encoding envelope() gives, without decoding the object and encoding it
   * again), else envelope().
   */
  responseEnvelope(): Record<string, unknown> | Uint8Array {
    if (this.bytes === undefined) return this.envelope();
    // made once: a watch event's object goes out to every watcher of it
    this.responseBytes ??= envelopeBytesWithResourceVersion(this.info.kind, this.bytes, this.resourceVersion);
    return this.responseBytes;
  }

  /** api.proto's `Object` envelope for the wire: `{ [envelopeField]: message }`. */
  envelope(): Record<string, unknown> {
    if (this.bytes === undefined) return toEnvelope(this.object);
    const message = this.info.message.decode(this.bytes) as { metadata?: Record<string, unknown> };
    message.metadata ??= {};
    message.metadata.resourceVersion = this.resourceVersion;
    return { [this.info.envelopeField]: message };
  }
}
