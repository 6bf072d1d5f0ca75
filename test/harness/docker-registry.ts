/**
 * Debian's docker-registry (Distribution 2.8, the reference implementation) on a free loopback
 * port, with its config and storage in a temp dir, for the registry client's interop tests and
 * benchmark; optionally behind htpasswd (basic) auth, or behind the token flow of public
 * registries with a token server run here (JWTs signed by a key the registry trusts).
 *
 * A missing tool fails with the apt-get line that installs it: these tests never skip.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, sign, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../../proto/support/pki.js';

/** The binary, or an Error naming the Debian package that has it. */
export function requireTool(binary: string, pkg: string): string {
  for (const dir of ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/bin']) {
    const path = join(dir, binary);
    if (existsSync(path)) return path;
  }
  throw new Error(`this test needs ${binary}: apt-get install -y ${pkg}`);
}

/** A port nobody listens on now (the kernel's pick). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface TokenAuth {
  /** Users and passwords the token server accepts (basic auth on the token request). */
  users: Record<string, string>;
  /** Anonymous requests get pull rights (Docker Hub's public repositories). */
  anonymousPull: boolean;
}

export interface DockerRegistryOptions {
  /** Basic auth: htpasswd entries made with `htpasswd -B` (apache2-utils). */
  htpasswd?: Record<string, string>;
  /** The token flow (WWW-Authenticate: Bearer realm=…,service=…,scope=…). */
  token?: TokenAuth;
}

export interface TestDockerRegistry {
  /** 127.0.0.1:PORT, as image references spell it. */
  host: string;
  url: string;
  dir: string;
  /** Token requests the token server answered (scope and user), when token auth is on. */
  tokenRequests: { scopes: string[]; user: string | undefined }[];
  stop(): Promise<void>;
}

const SERVICE = 'skiff-test-registry';
const ISSUER = 'skiff-test-issuer';

export async function startDockerRegistry(options: DockerRegistryOptions = {}): Promise<TestDockerRegistry> {
  const binary = requireTool('docker-registry', 'docker-registry');
  const dir = mkdtempSync(join(tmpdir(), 'skiff-docker-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const tokenRequests: TestDockerRegistry['tokenRequests'] = [];
  let tokenServer: Server | undefined;
  let auth = '';
  if (options.htpasswd) {
    const htpasswd = requireTool('htpasswd', 'apache2-utils');
    const lines = Object.entries(options.htpasswd).map(([user, password]) => {
      const r = spawnSync(htpasswd, ['-Bbn', user, password], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`htpasswd -Bbn ${user}: ${r.stderr}`);
      return r.stdout.trim();
    });
    writeFileSync(join(dir, 'htpasswd'), `${lines.join('\n')}\n`);
    auth = `auth:\n  htpasswd:\n    realm: basic-realm\n    path: ${join(dir, 'htpasswd')}\n`;
  } else if (options.token) {
    const ca = CertificateAuthority.create({ commonName: 'skiff-test-token-signer' });
    writeFileSync(join(dir, 'token-signer.crt'), ca.certificate.toString());
    tokenServer = await startTokenServer(options.token, ca.privateKey, libtrustKeyId(ca), tokenRequests);
    const realm = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/token`;
    auth =
      `auth:\n  token:\n    realm: ${realm}\n    service: ${SERVICE}\n    issuer: ${ISSUER}\n` +
      `    rootcertbundle: ${join(dir, 'token-signer.crt')}\n`;
  }
  const config =
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n` +
    `storage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n  delete:\n    enabled: true\n` +
    `http:\n  addr: ${host}\n${auth}`;
  writeFileSync(join(dir, 'config.yml'), config);
  const child = spawn(binary, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8192);
  });
  const stop = async () => {
    await stopChild(child);
    if (tokenServer) await new Promise((resolve) => tokenServer!.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(`http://${host}/v2/`, child, () => stderr);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host, url: `http://${host}`, dir, tokenRequests, stop };
}

async function waitReady(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${stderr()}`);
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`docker-registry not ready at ${url} after 15 s: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * libtrust's key ID, which Distribution 2.8 matches a token's `kid` against: the SHA-256 of the
 * DER (PKIX) public key, its first 240 bits in base32, in twelve groups of four joined by ':'.
 */
function libtrustKeyId(ca: CertificateAuthority): string {
  const der = ca.certificate.publicKey.export({ type: 'spki', format: 'der' });
  const hash = createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const byte of hash) bits += byte.toString(2).padStart(8, '0');
  let b32 = '';
  for (let i = 0; i < bits.length; i += 5) b32 += alphabet[parseInt(bits.slice(i, i + 5), 2)];
  return b32.match(/.{4}/g)!.join(':');
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * A token server as Docker Hub's auth service behaves: GET /token?service=…&scope=…, basic auth
 * optional; anonymous callers get pull rights only (when allowed), users get what they ask for.
 */
async function startTokenServer(
  auth: TokenAuth,
  key: KeyObject,
  kid: string,
  requests: TestDockerRegistry['tokenRequests'],
): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/token' || url.searchParams.get('service') !== SERVICE) {
      res.writeHead(404).end();
      return;
    }
    let user: string | undefined;
    const header = req.headers.authorization;
    if (header?.startsWith('Basic ')) {
      const [name, password] = Buffer.from(header.slice(6), 'base64').toString().split(':');
      if (!name || auth.users[name] !== password) {
        res
          .writeHead(401, { 'content-type': 'application/json' })
          .end('{"details":"incorrect username or password"}');
        return;
      }
      user = name;
    }
    const scopes = url.searchParams.getAll('scope');
    requests.push({ scopes, user });
    const access = scopes.flatMap((scope) => {
      const m = /^repository:([^:]+):(.+)$/.exec(scope);
      if (!m) return [];
      const wanted = m[2]!.split(',');
      const granted = user ? wanted : auth.anonymousPull ? wanted.filter((a) => a === 'pull') : [];
      return [{ type: 'repository', name: m[1]!, actions: granted }];
    });
    const now = Math.floor(Date.now() / 1000);
    const header64 = base64url(JSON.stringify({ typ: 'JWT', alg: 'ES256', kid }));
    const claims = base64url(
      JSON.stringify({
        iss: ISSUER,
        sub: user ?? '',
        aud: SERVICE,
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: `${now}-${requests.length}`,
        access,
      }),
    );
    const signature = sign('sha256', Buffer.from(`${header64}.${claims}`), {
      key,
      dsaEncoding: 'ieee-p1363',
    });
    const token = `${header64}.${claims}.${base64url(signature)}`;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(
        JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }),
      );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** skopeo, or an Error with its apt-get line. */
export function skopeoBinary(): string {
  return requireTool('skopeo', 'skopeo');
}

/** Runs skopeo to completion; rejects with its output when it fails. */
export function runSkopeo(args: string[], timeoutMs = 120_000): Promise<{ stdout: string; stderr: string }> {
  const binary = skopeoBinary();
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`skopeo ${args.join(' ')} exited ${code}: ${stderr}`));
    });
  });
}
