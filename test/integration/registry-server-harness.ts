/**
 * What the registry suites share: a registry on a free loopback port (the control plane's own
 * HttpServer and handler, the API's real Authenticator over tokens held in memory, one token per
 * role), requests with credentials, and the Debian tools the interoperability tests drive.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { Authenticator, generateToken, hashToken, type Role } from '../../controlplane/api/auth.js';
import { MemoryTokenStore } from '../../controlplane/api/token-store.js';
import { HttpServer } from '../../controlplane/http/server.js';
import {
  openRegistry,
  type ImageRegistry,
  type RegistryOptions,
} from '../../controlplane/registry/registry.js';
import { componentLogger } from '../../proto/support/logger.js';

export interface TestRegistry {
  /** `http://127.0.0.1:port` */
  url: string;
  /** `127.0.0.1:port` */
  address: string;
  dir: string;
  tokens: Record<Role, string>;
  registry: ImageRegistry;
  /** fetch against the registry with the admin token (or `token`; null sends none). */
  fetch(path: string, init?: FetchInit): Promise<Response>;
  close(): Promise<void>;
}

export type FetchInit = Omit<RequestInit, 'body'> & {
  token?: string | null;
  body?: BodyInit | Buffer | null;
};

export type TestRegistryOptions = Partial<Omit<RegistryOptions, 'authenticator' | 'log'>> & {
  /** Tokens to accept (another process's, to share them); new ones otherwise. */
  tokens?: Record<Role, string>;
};

export async function startTestRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'skiff-registry-')));
  const store = new MemoryTokenStore();
  const { tokens: given, ...registryOptions } = options;
  const tokens = { ...given } as Record<Role, string>;
  for (const role of ['admin', 'edit', 'view'] as const) {
    tokens[role] ??= generateToken();
    await store.createIfAbsent({
      name: role,
      role,
      sha256: hashToken(tokens[role]),
      createdAt: new Date().toISOString(),
    });
  }
  const log = componentLogger('registry-test');
  const authenticator = new Authenticator({ store, log });
  await authenticator.load();
  const metrics = new Registry();
  const registry = await openRegistry({
    sweepIntervalMs: 0,
    ...registryOptions,
    dir,
    authenticator,
    log,
    metrics,
  });
  const http = new HttpServer({ address: '127.0.0.1:0', readinessChecks: [], metrics, log });
  http.route('/v2', registry.handler);
  http.route('/v2/', registry.handler);
  const address = await http.listen();
  const url = `http://${address}`;
  return {
    url,
    address,
    dir,
    tokens,
    registry,
    fetch(path, init = {}) {
      const { token, body, ...rest } = init;
      const headers = new Headers(rest.headers);
      const credential = token === undefined ? tokens.admin : token;
      if (credential !== null && !headers.has('authorization'))
        headers.set('authorization', `Bearer ${credential}`);
      const converted = Buffer.isBuffer(body) ? Uint8Array.from(body) : (body as BodyInit | null | undefined);
      return fetch(`${url}${path}`, {
        ...rest,
        headers,
        ...(converted === undefined ? {} : { body: converted }),
      });
    },
    async close() {
      await http.close();
      await registry.close();
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The path of a Debian tool; fails (never skips) naming the package to install. */
export function requireTool(command: string, pkg: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`this test needs ${command}: apt-get install -y ${pkg}`);
  }
}
