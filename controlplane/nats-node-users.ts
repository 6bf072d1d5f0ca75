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
import { formatNatsAuthorization, natsAuthorizationNodes } from '../proto/support/nats-authorization.js';
import { writePrivateFiles } from '../proto/support/pki.js';

export class NatsNodeUsers {
  private nodes = new Set<string>();
  private writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly pidFile: string | undefined,
    private readonly log: Logger,
  ) {}

  /** Reads the nodes the file lists (none when it is missing). */
  async load(): Promise<void> {
    try {
      this.nodes = new Set(natsAuthorizationNodes(await readFile(this.file, 'utf8')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** Makes `node` a NATS user (its certificate then connects), reloading nats-server when it was not. */
  ensure(node: string): Promise<void> {
    if (this.nodes.has(node)) return this.writes;
    this.nodes.add(node);
    const nodes = [...this.nodes];
    this.writes = this.writes.then(async () => {
      try {
        await writePrivateFiles(
          dirname(this.file),
          { [basename(this.file)]: formatNatsAuthorization(nodes) },
          { replace: true },
        );
        await this.reload();
        this.log.info({ node, file: this.file }, 'nats user added for node');
      } catch (err) {
        this.nodes.delete(node);
        this.log.error({ node, file: this.file, err: errorMessage(err) }, 'add nats user for node failed');
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
