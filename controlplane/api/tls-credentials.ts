/**
 * The gRPC API's TLS: grpc-js server credentials that present the API's certificate and ask every
 * client for one, without requiring it. A client certificate that chains to the cluster CA makes
 * the call's principal (client-certificate.ts); a client without one (the CLI, with a bearer
 * token) is served as before, and one whose certificate does not verify is treated as having none
 * (grpc-js reports a peer certificate only when the handshake verified it).
 *
 * grpc-js's createSsl either requires client certificates or never asks for them; its
 * certificate-provider credentials ask and let the call decide, and take new certificates while
 * serving (`update`), so the API's certificate can be renewed without a restart.
 */
import * as grpc from '@grpc/grpc-js';

export interface ApiTlsMaterial {
  /** PEM: the CA(s) a client certificate must chain to (the cluster CA). */
  clientCa: string;
  /** PEM: the API's certificate (chain) and its private key. */
  cert: string;
  key: string;
}

export interface ApiServerCredentials {
  credentials: grpc.ServerCredentials;
  /** Serve new connections with new material (existing connections keep theirs). */
  update(material: ApiTlsMaterial): void;
}

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

/** One provider for both roles: the CA that verifies clients, and the API's own certificate. */
class StaticCertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  constructor(private material: ApiTlsMaterial) {}

  set(material: ApiTlsMaterial): void {
    this.material = material;
    for (const listener of this.caListeners) listener(this.caUpdate());
    for (const listener of this.identityListeners) listener(this.identityUpdate());
  }

  private caUpdate(): { caCertificate: Buffer } {
    return { caCertificate: Buffer.from(this.material.clientCa) };
  }

  private identityUpdate(): { certificate: Buffer; privateKey: Buffer } {
    return { certificate: Buffer.from(this.material.cert), privateKey: Buffer.from(this.material.key) };
  }

  // Listeners hear the current material on the next tick: grpc-js 1.14 adds the server's own
  // watcher only after adding these, so a synchronous answer would never reach the server.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => this.caListeners.has(listener) && listener(this.caUpdate()));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => this.identityListeners.has(listener) && listener(this.identityUpdate()));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
}

export function apiServerCredentials(material: ApiTlsMaterial): ApiServerCredentials {
  const provider = new StaticCertificateProvider(material);
  // The same provider in both places: grpc-js 1.14's factory passes its arguments to the
  // constructor in the other order than its declaration names them.
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
  return { credentials, update: (next) => provider.set(next) };
}
