/**
 * The NATS users of the nodes (proto/support/nats-authorization.ts): nats-server maps each client
 * certificate to a user of a file it includes, and cannot template one per node, so the control
 * plane adds a node to that file when it issues the node's certificate and has nats-server reload
 * it (SIGHUP to the pid in nats-server's pid file). Where the file is not the control plane's to
 * write (an external NATS), the option is left out and an operator keeps the users.
 */
import { readFile } from 'node:fs/promises';
import { dirname, basename } from 'node:path';
import { errorMessage } from '../proto/errors.js';
import type { Logger } from '../proto/support/logger.js';
import {
  formatNatsAuthorization,
  natsAuthorizationUsers,
  type NatsIdentity,
} from '../proto/support/nats-authorization.js';
import { writePrivateFiles } from '../proto/support/pki.js';

export class NatsNodeUsers {
  private nodes = new Set<string>();
  private groups = new Set<string>();
  private writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly pidFile: string | undefined,
    private readonly log: Logger,
  ) {}

  /** Reads the nodes and node groups the file lists (none when it is missing). */
  async load(): Promise<void> {
    try {
      const users = natsAuthorizationUsers(await readFile(this.file, 'utf8'));
      this.nodes = new Set(users.nodes);
      this.groups = new Set(users.groups);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /**
   * Makes a node or node group a NATS user (its certificate then connects), reloading nats-server
   * when it was not.
   */
  ensure(identity: NatsIdentity): Promise<void> {
    const [set, name, field] =
      'node' in identity
        ? [this.nodes, identity.node, 'node']
        : [this.groups, identity.nodeGroup, 'nodeGroup'];
    if (set.has(name)) return this.writes;
    set.add(name);
    const text = formatNatsAuthorization(this.nodes, this.groups);
    this.writes = this.writes.then(async () => {
      try {
        await writePrivateFiles(dirname(this.file), { [basename(this.file)]: text }, { replace: true });
        await this.reload();
        this.log.info({ [field]: name, file: this.file }, 'nats user added');
      } catch (err) {
        set.delete(name);
        this.log.error({ [field]: name, file: this.file, err: errorMessage(err) }, 'add nats user failed');
      }
    });
    return this.writes;
  }

  private async reload(): Promise<void> {
    if (this.pidFile === undefined) return;
    const pid = Number((await readFile(this.pidFile, 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`${this.pidFile} holds no pid`);
    process.kill(pid, 'SIGHUP');
  }
}
