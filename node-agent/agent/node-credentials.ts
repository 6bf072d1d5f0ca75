/**
 * A node agent's credentials: the cluster's CA bundle, and the node's client certificate and key,
 * which make every API call (and the NATS connection) mutual TLS as `system:node:<node>`.
 *
 *   obtainNodeCredentials   reuse a still-valid certificate for this node from `dir`; else join:
 *                           1. parse the join token K10<CA hash>::<secret> (proto/join-token.ts)
 *                           2. fetch the CA bundle over TLS that verifies nothing yet
 *                           3. refuse the server unless the bundle hashes to the token's hash
 *                           4. a new ECDSA P-256 key; its public key and the secret, now over
 *                              TLS verified with that CA, buy a certificate (skiff.v1.Nodes)
 *                           5. ca.crt, node.key, node.crt written 0600 in a 0700 `dir`
 *   renewNodeCredentials    the same step 4-5 over mutual TLS with the current certificate
 *   startCertificateRenewal renews at 70-90 % of the remaining lifetime (jittered, so a fleet
 *                           started together does not renew together), retries a failure with
 *                           back-off while the certificate lasts, and hands each renewal over
 *
 * A node group (hollow nodes, `skiff agent --hollow`) joins the same way with `nodeGroup` set: its
 * certificate is `system:node-group:<group>` (proto/node-group.ts).
 *
 * Files in `dir`: ca.crt (the bundle), node.key (PKCS#8), node.crt. The certificate is written
 * last, so a crash leaves either the old pair or a key without its certificate (joined again).
 */
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectApi, fetchUnverifiedTrustBundle } from '../../proto/client.js';
import { InvalidArgumentError, PermissionDeniedError, errorMessage } from '../../proto/errors.js';
import { parseJoinToken } from '../../proto/join-token.js';
import type { Logger } from '../../proto/support/logger.js';
import { privateKeyToPem, writePrivateFiles } from '../../proto/support/pki.js';
import { bundleCertificates, trustBundleHash } from '../../proto/support/trust-bundle.js';
import { NODE_GROUP_USER_PREFIX } from '../../proto/node-group.js';

export const CA_FILE = 'ca.crt';
export const CERT_FILE = 'node.crt';
export const KEY_FILE = 'node.key';

/** PEM strings: what `connectApi({ server, tls })` and a NATS TLS connection take. */
export interface NodeCredentials {
  ca: string;
  cert: string;
  key: string;
  /** When the certificate expires. */
  notAfter: Date;
}

export interface ObtainNodeCredentialsOptions {
  /** The API, host:port. */
  server: string;
  /** K10<hash>::<secret>; needed only when `dir` holds no still-valid certificate for the node. */
  joinToken?: string;
  nodeName: string;
  /** Instead of a node: a node group's certificate (nodeName is then the group's name too). */
  nodeGroup?: string;
  /** Where the credentials are kept (made 0700). */
  dir: string;
  log: Logger;
  now?: () => Date;
  /** Deadline of each call; default 10 s. */
  timeoutMs?: number;
}

const COMMON_NAME_PREFIX = 'system:node:';

/** The certificate's CN for a node, or for a node group. */
function commonNameOf(nodeName: string, nodeGroup: string | undefined): string {
  return nodeGroup !== undefined
    ? `${NODE_GROUP_USER_PREFIX}${nodeGroup}`
    : `${COMMON_NAME_PREFIX}${nodeName}`;
}

/**
 * The credentials in `dir` when they are a still-valid certificate of `nodeName` (or of node group
 * `nodeGroup`) from that CA.
 */
export async function readNodeCredentials(
  dir: string,
  nodeName: string,
  now: Date = new Date(),
  nodeGroup?: string,
): Promise<NodeCredentials | undefined> {
  let ca: string, cert: string, key: string;
  try {
    [ca, cert, key] = (await Promise.all(
      [CA_FILE, CERT_FILE, KEY_FILE].map((name) => readFile(join(dir, name), 'utf8')),
    )) as [string, string, string];
  } catch {
    return undefined;
  }
  try {
    const certificate = new X509Certificate(cert);
    const issued = bundleCertificates(ca).some(
      (each) => certificate.checkIssued(each) && certificate.verify(each.publicKey),
    );
    const valid =
      issued &&
      certificate.subject.split('\n').includes(`CN=${commonNameOf(nodeName, nodeGroup)}`) &&
      certificate.validFromDate.getTime() <= now.getTime() &&
      certificate.validToDate.getTime() > now.getTime() &&
      certificate.checkPrivateKey(createPrivateKey(key));
    return valid ? { ca, cert, key, notAfter: certificate.validToDate } : undefined;
  } catch {
    return undefined;
  }
}

/** A fresh key, its certificate from the server (through `api`), all written to `dir`. */
async function certify(
  api: ReturnType<typeof connectApi>,
  nodeName: string,
  dir: string,
  nodeGroup?: string,
): Promise<NodeCredentials> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const issued = await api.issueNodeCertificate({
    ...(nodeGroup !== undefined ? { nodeName: '', nodeGroup } : { nodeName }),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  });
  const certificate = new X509Certificate(issued.certificate);
  if (!certificate.publicKey.equals(publicKey)) {
    throw new PermissionDeniedError(
      `obtain a certificate for node "${nodeName}": the server answered with a certificate for another key`,
    );
  }
  const credentials = {
    ca: issued.caBundle,
    cert: issued.certificate,
    key: privateKeyToPem(privateKey),
    notAfter: certificate.validToDate,
  };
  await writePrivateFiles(
    dir,
    { [CA_FILE]: credentials.ca, [KEY_FILE]: credentials.key, [CERT_FILE]: credentials.cert },
    { replace: true },
  );
  return credentials;
}

/**
 * The node's credentials: the still-valid ones in `dir`, else new ones bought with the join token
 * (see the file's comment). PermissionDeniedError when the server's CA is not the token's; the
 * server's refusals (an expired or revoked token: UnauthenticatedError) as they come.
 */
export async function obtainNodeCredentials(options: ObtainNodeCredentialsOptions): Promise<NodeCredentials> {
  const { server, nodeName, dir, log } = options;
  const now = options.now?.() ?? new Date();
  const kept = await readNodeCredentials(dir, nodeName, now, options.nodeGroup);
  if (kept !== undefined) {
    log.info({ node: nodeName, dir, notAfter: kept.notAfter.toISOString() }, 'node certificate reused');
    return kept;
  }
  if (options.joinToken === undefined) {
    throw new InvalidArgumentError(
      `join node "${nodeName}": ${dir} holds no valid certificate for it, and no join token was given (skiff token create --role join)`,
      'token',
    );
  }
  const token = parseJoinToken(options.joinToken);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const bundle = await fetchUnverifiedTrustBundle(server, timeoutMs);
  let shown: string;
  try {
    shown = trustBundleHash(bundle);
  } catch (err) {
    throw new PermissionDeniedError(
      `join node "${nodeName}" at ${server}: the server's CA bundle does not parse (${errorMessage(err)}); refusing it`,
      { cause: err },
    );
  }
  if (shown !== token.caHash) {
    log.error(
      { node: nodeName, server, expected: token.caHash, shown },
      'server CA does not match the join token',
    );
    throw new PermissionDeniedError(
      `join node "${nodeName}" at ${server}: the server's CA (sha256 ${shown}) is not the one the join token names (sha256 ${token.caHash}); refusing to trust it: check --server, and that the token is this cluster's`,
    );
  }
  const api = connectApi({ server, token: token.secret, tls: { ca: bundle }, timeoutMs });
  try {
    const credentials = await certify(api, nodeName, dir, options.nodeGroup);
    log.info(
      { node: nodeName, server, notAfter: credentials.notAfter.toISOString() },
      'node joined: certificate issued',
    );
    return credentials;
  } catch (err) {
    log.error({ node: nodeName, server, err: errorMessage(err) }, 'join refused');
    throw err;
  } finally {
    api.close();
  }
}

/** New credentials for the node bought with its current ones (mutual TLS), written to `dir`. */
export async function renewNodeCredentials(options: {
  server: string;
  nodeName: string;
  dir: string;
  credentials: NodeCredentials;
  nodeGroup?: string;
  timeoutMs?: number;
}): Promise<NodeCredentials> {
  const { ca, cert, key } = options.credentials;
  const api = connectApi({
    server: options.server,
    tls: { ca, cert, key },
    timeoutMs: options.timeoutMs ?? 10_000,
  });
  try {
    return await certify(api, options.nodeName, options.dir, options.nodeGroup);
  } finally {
    api.close();
  }
}

/** The longest delay a Node timer keeps (a longer one fires after 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** When to renew: 70-90 % of the way from `now` to the certificate's end. */
export function renewalDelayMs(notAfter: Date, now: Date, random: () => number = Math.random): number {
  const remaining = Math.max(0, notAfter.getTime() - now.getTime());
  return Math.round(remaining * (0.7 + 0.2 * random()));
}

export interface CertificateRenewal {
  stop(): void;
}

/**
 * Renews the node's certificate before it expires, again and again, until stopped; `onRenewed`
 * gets each new set (reconnect with it). A failed renewal is logged and retried after a tenth of
 * the time left (at least 10 s, at most 10 min); once the certificate has expired the agent must
 * join again with a token, which is logged as an error.
 */
export function startCertificateRenewal(options: {
  server: string;
  nodeName: string;
  dir: string;
  credentials: NodeCredentials;
  nodeGroup?: string;
  log: Logger;
  onRenewed: (credentials: NodeCredentials) => void;
  now?: () => Date;
  random?: () => number;
}): CertificateRenewal {
  const now = options.now ?? (() => new Date());
  let current = options.credentials;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = (delayMs: number): void => {
    if (stopped) return;
    // Node fires a timer of more than 2^31-1 ms (24.8 days) at once: 70-90 % of a 30-day
    // certificate often is more, so a longer wait is made of several timers
    const step = Math.min(delayMs, MAX_TIMER_MS);
    timer = setTimeout(() => (step < delayMs ? schedule(delayMs - step) : void renew()), step);
    timer.unref();
  };
  const renew = async (): Promise<void> => {
    try {
      current = await renewNodeCredentials({ ...options, credentials: current });
      if (stopped) return;
      options.log.info(
        { node: options.nodeName, notAfter: current.notAfter.toISOString() },
        'node certificate renewed',
      );
      options.onRenewed(current);
      schedule(renewalDelayMs(current.notAfter, now(), options.random));
    } catch (err) {
      const left = current.notAfter.getTime() - now().getTime();
      if (left <= 0) {
        options.log.error(
          { node: options.nodeName, err: errorMessage(err) },
          'node certificate expired before it could be renewed: join again with a token',
        );
        return;
      }
      options.log.warn(
        { node: options.nodeName, err: errorMessage(err), expiresInMs: left },
        'node certificate renewal failed; retrying',
      );
      schedule(Math.min(10 * 60_000, Math.max(10_000, left / 10)));
    }
  };
  schedule(renewalDelayMs(current.notAfter, now(), options.random));
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
