/**
 * First-start bootstrap of the admin token: when etcd holds no token at all, create one, write
 * its plaintext to the token file (mode 0600) and store only its hash. The file is written
 * before the hash is stored, so a crash in between leaves no stored token and the next start
 * simply creates a fresh one; a stored hash whose plaintext was never written cannot happen.
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../../proto/support/atomic-file.js';
import { errorMessage, FailedPreconditionError } from '../../proto/errors.js';
import type { Logger } from '../../proto/support/logger.js';
import { generateToken, hashToken, type TokenStore } from './auth.js';

export const ADMIN_TOKEN_NAME = 'admin';

async function writeSecretFile(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await writeFileAtomic(path, content, { mode: 0o600, durable: true });
  } catch (err) {
    throw new FailedPreconditionError(`write admin token file ${path}: ${errorMessage(err)}`, { cause: err });
  }
}

/** Ensures an admin token exists; resolves true when this call created it (and wrote `tokenFile`). */
export async function ensureAdminToken(
  tokens: TokenStore,
  tokenFile: string,
  log: Logger,
  now: () => Date = () => new Date(),
): Promise<boolean> {
  const existing = await tokens.list();
  if (existing.length > 0) {
    log.info({ tokens: existing.length, tokenFile }, 'api tokens exist; admin token not created');
    return false;
  }
  const token = generateToken();
  await writeSecretFile(tokenFile, `${token}\n`);
  const created = await tokens.createIfAbsent({
    name: ADMIN_TOKEN_NAME,
    role: 'admin',
    sha256: hashToken(token),
    createdAt: now().toISOString(),
  });
  if (!created) {
    // Another control plane won the race; our plaintext matches nothing, so do not leave it around.
    await rm(tokenFile, { force: true });
    log.warn({ tokenFile }, 'admin token was created by another control plane; use its token file');
    return false;
  }
  log.info({ tokenFile }, 'admin token created');
  return true;
}
