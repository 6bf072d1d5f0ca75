/**
 * The API's Unix socket (`skiff controlplane --api-socket PATH`): the same gRPC server as the TCP
 * address (the same services, bearer tokens and authorization), bound to a socket file, without
 * TLS, for the CLI on this machine: it then loads neither node:tls nor node:crypto and does no
 * handshake. What keeps it private is the file system, as Docker's and containerd's sockets:
 *
 *   directory   a real directory (not a symbolic link) of the control plane's user, open to no one
 *               else (0700): no other user can connect, nor remove the socket and put a server of
 *               their own in its place to collect the tokens clients send. Made 0700 when missing;
 *               an existing one that is not so is refused, never changed behind the operator's back
 *   the path    nothing there: bound. A socket no process serves (a control plane that was killed):
 *               removed, then bound. A socket something serves: refused (another control plane).
 *               A symbolic link, or anything else: refused, never followed or removed
 *   the socket  0600 and the control plane's user's once bound (grpc-js binds with the umask;
 *               the directory keeps everyone out meanwhile)
 *   stop        the socket is removed, when it is still the one this process bound
 *
 * Node's socket calls take paths, so each check is by path; the 0700 directory is what makes a
 * check and the step after it see the same file.
 */
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { socketPathProblem } from '../../proto/api-address.js';
import { FailedPreconditionError, InvalidArgumentError, errorMessage } from '../../proto/errors.js';
import type { Logger } from '../../proto/support/logger.js';

/** The socket file a control plane bound: what `removeApiSocket` removes, and nothing else. */
export interface BoundSocket {
  path: string;
  dev: number;
  ino: number;
}

/** How long the probe of an existing socket waits for a server to accept. */
const PROBE_TIMEOUT_MS = 2000;

const octal = (mode: number): string => `0${(mode & 0o777).toString(8)}`;

function ownUid(): number {
  return process.getuid?.() ?? 0;
}

/**
 * Makes `path` ready for a bind: its directory checked (made 0700 when missing), a stale socket
 * there removed. FailedPreconditionError saying what is wrong and what to do otherwise.
 */
export async function prepareApiSocket(path: string, log: Logger): Promise<void> {
  const problem = socketPathProblem(path);
  if (problem !== undefined) throw new InvalidArgumentError(`--api-socket: ${problem}`, 'api-socket');
  const uid = ownUid();
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const dirStat = await lstat(dir);
  if (!dirStat.isDirectory()) {
    throw new FailedPreconditionError(
      `serve the API on ${path}: ${dir} is a symbolic link or not a directory; give --api-socket a path in a real directory`,
    );
  }
  if (dirStat.uid !== uid || (dirStat.mode & 0o077) !== 0) {
    throw new FailedPreconditionError(
      `serve the API on ${path}: its directory ${dir} is ${dirStat.uid !== uid ? `owned by uid ${dirStat.uid}` : `mode ${octal(dirStat.mode)}`}; it must be uid ${uid}'s with mode 0700, so that no one else can reach the socket or put another in its place (chown ${uid} ${dir}; chmod 700 ${dir}), or give --api-socket a path in such a directory`,
    );
  }
  let existing;
  try {
    existing = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new FailedPreconditionError(`serve the API on ${path}: ${errorMessage(err)}`, { cause: err });
  }
  if (existing.isSymbolicLink()) {
    throw new FailedPreconditionError(
      `serve the API on ${path}: it is a symbolic link; refusing to follow or replace it: remove it if it is yours`,
    );
  }
  if (!existing.isSocket()) {
    throw new FailedPreconditionError(
      `serve the API on ${path}: something that is not a socket is there; refusing to replace it: remove it, or give another --api-socket`,
    );
  }
  if (existing.uid !== uid) {
    throw new FailedPreconditionError(
      `serve the API on ${path}: a socket of uid ${existing.uid} is there; refusing to replace it: remove it if it is stale`,
    );
  }
  if (await isServed(path)) {
    throw new FailedPreconditionError(
      `serve the API on ${path}: another process serves that socket (a control plane still running?); stop it, or give another --api-socket`,
    );
  }
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
  log.info({ socket: path }, 'removed a stale API socket');
}

/** True when a server accepts on the socket; false when none does (ECONNREFUSED) or it is gone. */
function isServed(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    const done = (served: boolean | Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (served instanceof Error) reject(served);
      else resolve(served);
    };
    // a server too busy to accept in time is still a server
    const timer = setTimeout(() => done(true), PROBE_TIMEOUT_MS);
    socket.once('connect', () => done(true));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') done(false);
      else
        done(
          new FailedPreconditionError(`serve the API on ${path}: probe the socket there: ${err.message}`, {
            cause: err,
          }),
        );
    });
  });
}

/** After the bind: checks the file is the socket just made, and makes it 0600. */
export async function secureBoundSocket(path: string): Promise<BoundSocket> {
  const stat = await lstat(path);
  if (!stat.isSocket() || stat.uid !== ownUid()) {
    throw new FailedPreconditionError(
      `serve the API on ${path}: after the bind the path is not this process's socket; something else writes that directory`,
    );
  }
  await chmod(path, 0o600);
  return { path, dev: stat.dev, ino: stat.ino };
}

/** Removes the socket when it is still the one bound (Node removes it when the server closes). */
export async function removeApiSocket(bound: BoundSocket): Promise<void> {
  try {
    const stat = await lstat(bound.path);
    if (stat.isSocket() && stat.dev === bound.dev && stat.ino === bound.ino) await unlink(bound.path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
