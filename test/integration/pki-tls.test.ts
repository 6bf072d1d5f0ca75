/**
 * Certificates from proto/support/pki.ts in real TLS: Node's tls module on loopback with client
 * certificates required, then (with Debian's etcd-server and etcd-client, which the set-up installs) a real
 * etcd with client-certificate authentication on its client and peer URLs, driven by etcdctl.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type ConnectionOptions, type Server, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { spawnManagedServer, type ManagedServer } from '../../cli/up/process-support.js';
import {
  CertificateAuthority,
  privateKeyToPem,
  writeCertificateAuthority,
  writePrivateFiles,
  type CertifiedKeyPair,
} from '../../proto/support/pki.js';

const DAY_MS = 24 * 60 * 60 * 1000;

function pemOf(pair: CertifiedKeyPair): { cert: string; key: string } {
  return { cert: pair.certificate.toString(), key: privateKeyToPem(pair.privateKey) };
}

/** What a client saw: the server's greeting when it was let in, or the error that ended it. */
type Outcome = { accepted: true; greeting: string } | { accepted: false; code: string; message: string };

/**
 * Connects, reads until the server closes, and reports whether data came. In TLS 1.3 the client
 * finishes its handshake before the server has judged the client's certificate, so "connected" is
 * not "accepted": only the server's greeting, sent after it verified the client, is.
 */
function talk(port: number, options: ConnectionOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    let received = '';
    let settled = false;
    const settle = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(outcome);
    };
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, ...options });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', (err: NodeJS.ErrnoException) =>
      settle({ accepted: false, code: err.code ?? 'ERROR', message: err.message }),
    );
    socket.on('close', () =>
      settle(
        received === ''
          ? { accepted: false, code: 'CLOSED', message: 'closed without a greeting' }
          : { accepted: true, greeting: received },
      ),
    );
  });
}

describe('TLS with certificates from the skiff CA', () => {
  const ca = CertificateAuthority.create({ commonName: 'skiff-ca' });
  const otherCa = CertificateAuthority.create({ commonName: 'skiff-ca' }); // same name, other key
  const serverPair = ca.issueKeyPair({
    commonName: 'skiff-test-server',
    usages: ['server auth'],
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
  });
  const client = pemOf(
    ca.issueKeyPair({
      commonName: 'skiff-controlplane',
      organizations: ['system:masters'],
      usages: ['client auth'],
    }),
  );
  let server: Server;
  let port: number;
  const serverErrors: string[] = [];

  before(async () => {
    server = createServer({
      ...pemOf(serverPair),
      ca: [ca.certificatePem],
      requestCert: true,
      rejectUnauthorized: true,
    });
    server.on('secureConnection', (socket) => {
      const peer = socket.getPeerCertificate();
      socket.end(`hello ${peer.subject.CN} of ${String(peer.subject.O)}; authorized ${socket.authorized}`);
    });
    // a client refused for its certificate is destroyed by Node after the handshake: the error
    // is a bare "socket hang up", and the reason is the socket's authorizationError
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) =>
      serverErrors.push(`${String(socket.authorizationError ?? err.code)}: ${err.message}`),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Talks to the server and returns what it saw and what the server logged meanwhile. */
  async function attempt(options: ConnectionOptions): Promise<{ outcome: Outcome; serverError?: string }> {
    const before = serverErrors.length;
    const outcome = await talk(port, { ca: [ca.certificatePem], ...options });
    const logged = serverErrors.slice(before);
    return {
      outcome,
      ...(logged.length > 0 ? { serverError: logged.join('; ') } : {}),
    };
  }

  test('a client with a certificate from the same CA is let in, as who its certificate says', async () => {
    for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
      const { outcome, serverError } = await attempt({ ...client, maxVersion });
      assert.deepEqual(
        outcome,
        { accepted: true, greeting: 'hello skiff-controlplane of system:masters; authorized true' },
        maxVersion,
      );
      assert.equal(serverError, undefined);
    }
  });

  test('a client without a certificate is refused', async () => {
    const { outcome, serverError } = await attempt({});
    assert.equal(outcome.accepted, false);
    assert.match(serverError ?? '', /peer did not return a certificate/);
  });

  test('a client with a certificate from another CA is refused, though its CA has the same name', async () => {
    const foreign = pemOf(
      otherCa.issueKeyPair({ commonName: 'skiff-controlplane', usages: ['client auth'] }),
    );
    const { outcome, serverError } = await attempt(foreign);
    assert.equal(outcome.accepted, false);
    assert.match(serverError ?? '', /^UNABLE_TO_VERIFY_LEAF_SIGNATURE: /);
  });

  test('a certificate for servers only is refused as a client certificate', async () => {
    const serverOnly = pemOf(
      ca.issueKeyPair({ commonName: 'server-only', usages: ['server auth'], dnsNames: ['localhost'] }),
    );
    const { outcome, serverError } = await attempt(serverOnly);
    assert.equal(outcome.accepted, false);
    assert.match(serverError ?? '', /^INVALID_PURPOSE: /);
  });

  test('an expired client certificate is refused', async () => {
    const expired = pemOf(
      ca.issueKeyPair({
        commonName: 'expired',
        usages: ['client auth'],
        now: new Date(Date.now() - 30 * DAY_MS),
        notAfter: new Date(Date.now() - DAY_MS),
      }),
    );
    const { outcome, serverError } = await attempt(expired);
    assert.equal(outcome.accepted, false);
    assert.match(serverError ?? '', /^CERT_HAS_EXPIRED: /);
  });

  test('the client checks the server: its CA, and the host against the subjectAltName', async () => {
    assert.equal((await attempt({ ...client, servername: 'localhost' })).outcome.accepted, true);
    // the server sends its CA certificate along (OpenSSL builds the chain from `ca`), which the
    // client does not trust: it has a CA of the same name, but another key
    const wrongCa = await talk(port, { ...client, ca: [otherCa.certificatePem] });
    assert.deepEqual(wrongCa.accepted ? 'accepted' : wrongCa.code, 'SELF_SIGNED_CERT_IN_CHAIN');
    // the host name is checked against the SAN (not the CN); the IP 127.0.0.1 is in it
    const wrongHost = await talk(port, { ...client, ca: [ca.certificatePem], servername: 'etcd.example' });
    assert.deepEqual(wrongHost.accepted ? 'accepted' : wrongHost.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    const commonName = await talk(port, {
      ...client,
      ca: [ca.certificatePem],
      servername: 'skiff-test-server',
    });
    assert.deepEqual(commonName.accepted ? 'accepted' : commonName.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
  });
});

const ETCD = '/usr/bin/etcd';
const ETCDCTL = '/usr/bin/etcdctl';
/** A missing etcd fails the tests with what to install; it never skips them. */
function requireInstalled(path: string, aptPackage: string): void {
  assert.ok(existsSync(path), `${path} is not installed: apt-get install -y ${aptPackage}`);
}

describe('etcd with client-certificate authentication', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-pki-etcd-'));
  const pki = join(dir, 'pki');
  const file = (name: string): string => join(pki, name);
  let etcd: ManagedServer<'etcd client port' | 'etcd peer port'> | undefined;
  let clientUrl = '';
  const clientTls = (): ClientTls => ({
    ca: readFileSync(file('ca.crt')),
    cert: readFileSync(file('client.crt')),
    key: readFileSync(file('client.key')),
  });

  before(async () => {
    requireInstalled(ETCD, 'etcd-server');
    requireInstalled(ETCDCTL, 'etcd-client');
    const ca = CertificateAuthority.create({ commonName: 'skiff-etcd-ca' });
    const otherCa = CertificateAuthority.create({ commonName: 'skiff-etcd-ca' });
    const hosts = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };
    // a member's certificates serve and also dial: peers dial each other, and etcd's own
    // gateway dials its client port with the server certificate when client-cert-auth is on
    const pairs: Record<string, CertifiedKeyPair> = {
      server: ca.issueKeyPair({ commonName: 'skiff', usages: ['server auth', 'client auth'], ...hosts }),
      peer: ca.issueKeyPair({ commonName: 'skiff', usages: ['server auth', 'client auth'], ...hosts }),
      client: ca.issueKeyPair({ commonName: 'skiff-controlplane', usages: ['client auth'] }),
      foreign: otherCa.issueKeyPair({ commonName: 'skiff-controlplane', usages: ['client auth'] }),
    };
    await writeCertificateAuthority(pki, ca);
    const files: Record<string, string> = {};
    for (const [name, pair] of Object.entries(pairs)) {
      files[`${name}.key`] = privateKeyToPem(pair.privateKey);
      files[`${name}.crt`] = pair.certificate.toString();
    }
    await writePrivateFiles(pki, files);
    const tls = clientTls();
    etcd = await spawnManagedServer({
      command: 'etcd',
      aptPackage: 'etcd-server',
      host: '127.0.0.1',
      ports: { 'etcd client port': {}, 'etcd peer port': {} },
      dataDir: join(dir, 'data'),
      args: (ports) => {
        const client = `https://127.0.0.1:${ports['etcd client port']}`;
        const peer = `https://127.0.0.1:${ports['etcd peer port']}`;
        return [
          '--name', 'skiff',
          '--data-dir', join(dir, 'data'),
          '--listen-client-urls', client,
          '--advertise-client-urls', client,
          '--listen-peer-urls', peer,
          '--initial-advertise-peer-urls', peer,
          '--initial-cluster', `skiff=${peer}`,
          '--initial-cluster-state', 'new',
          '--client-cert-auth',
          '--trusted-ca-file', file('ca.crt'),
          '--cert-file', file('server.crt'),
          '--key-file', file('server.key'),
          '--peer-client-cert-auth',
          '--peer-trusted-ca-file', file('ca.crt'),
          '--peer-cert-file', file('peer.crt'),
          '--peer-key-file', file('peer.key'),
          '--logger', 'zap',
          '--log-outputs', 'stderr',
        ]; // prettier-ignore
      },
      describe: (ports) => `etcd https://127.0.0.1:${ports['etcd client port']} (data ${dir})`,
      ready: async (ports) => {
        const health = await httpsRequest(ports['etcd client port'], '/health', tls);
        return health.status === 200 && health.body.includes('"health":"true"');
      },
      readyTimeoutMs: 15_000,
      output: { logFile: join(dir, 'etcd.log') },
      detached: false,
    });
    clientUrl = `https://127.0.0.1:${etcd.ports['etcd client port']}`;
  });

  // stops etcd by pid (SIGTERM, then SIGKILL) and removes its directory, passed or failed
  after(async () => {
    try {
      await etcd?.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  function etcdctl(credentials: string[], ...command: string[]): Promise<{ ok: boolean; output: string }> {
    const args = [
      `--endpoints=${clientUrl}`,
      `--cacert=${file('ca.crt')}`,
      ...credentials,
      '--dial-timeout=2s',
      '--command-timeout=3s',
      ...command,
    ];
    return promisify(execFile)(ETCDCTL, args, { env: { ...process.env, ETCDCTL_API: '3' } }).then(
      ({ stdout, stderr }) => ({ ok: true, output: stdout + stderr }),
      (err: { stdout?: string; stderr?: string; message: string }) => ({
        ok: false,
        output: `${err.stdout ?? ''}${err.stderr ?? err.message}`,
      }),
    );
  }

  test('etcdctl with the control plane certificate can put and get', async () => {
    const withCertificate = [`--cert=${file('client.crt')}`, `--key=${file('client.key')}`];
    assert.deepEqual(await etcdctl(withCertificate, 'put', '/skiff/pki-test', 'works'), {
      ok: true,
      output: 'OK\n',
    });
    assert.deepEqual(await etcdctl(withCertificate, 'get', '/skiff/pki-test'), {
      ok: true,
      output: '/skiff/pki-test\nworks\n',
    });
  });

  test("etcd's JSON gateway works: it dials etcd with the server certificate, which needs client auth", async () => {
    // with a server-auth-only server certificate etcd 3.4 logs "certificate specifies an
    // incompatible key usage" and the gateway answers code 14 (unavailable)
    const key = Buffer.from('/skiff/pki-gateway').toString('base64');
    const value = Buffer.from('through the gateway').toString('base64');
    const port = etcd!.ports['etcd client port'];
    const put = await httpsRequest(port, '/v3/kv/put', clientTls(), { key, value });
    assert.equal(put.status, 200, put.body);
    const range = await httpsRequest(port, '/v3/kv/range', clientTls(), { key });
    assert.equal(range.status, 200, range.body);
    const kvs = (JSON.parse(range.body) as { kvs?: Array<{ value: string }> }).kvs ?? [];
    assert.deepEqual(
      kvs.map((kv) => kv.value),
      [value],
    );
  });

  test('etcdctl without a client certificate, or with one from another CA, is refused', async () => {
    const without = await etcdctl([], 'get', '/skiff/pki-test');
    assert.equal(without.ok, false, without.output);
    assert.doesNotMatch(without.output, /works/);
    const foreign = await etcdctl(
      [`--cert=${file('foreign.crt')}`, `--key=${file('foreign.key')}`],
      'get',
      '/skiff/pki-test',
    );
    assert.equal(foreign.ok, false, foreign.output);
    assert.doesNotMatch(foreign.output, /works/);
    // etcd refused them at the TLS handshake, which is why the commands failed (with a timeout)
    const log = readFileSync(join(dir, 'etcd.log'), 'utf8');
    assert.match(log, /"rejected connection".*"tls: client didn't provide a certificate"/);
    assert.match(log, /"rejected connection".*x509: certificate signed by unknown authority/);
  });
});

interface ClientTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** A GET (or, with a body, a JSON POST) over TLS to 127.0.0.1:port, presenting `tls.cert`. */
function httpsRequest(
  port: number,
  path: string,
  tls: ClientTls,
  json?: unknown,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const method = json === undefined ? 'GET' : 'POST';
    const req = request({ host: '127.0.0.1', port, path, method, ...tls, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 2 s`)));
    req.on('error', reject);
    req.end(json === undefined ? undefined : JSON.stringify(json));
  });
}
