/** `skiff secrets rotate-key`: a new key encrypts Secrets at rest, and every Secret is rewritten under it. */
import type { Command } from 'commander';
import { out, withClient } from './context.js';

export function registerSecrets(program: Command): void {
  const secrets = program.command('secrets').description('operations on how Secrets are stored');
  secrets
    .command('rotate-key')
    .description(
      'make a new key the one that encrypts Secrets at rest and rewrite every Secret under it (admin token); older keys stay, so backups still decrypt',
    )
    .action(async (_opts: unknown, command: Command) => {
      await withClient(command, async (api) => {
        const result = await api.rotateEncryptionKey();
        out(
          `encryption key ${result.keyName} now encrypts ${result.resources.join(', ')}; ` +
            `${result.rewritten} rewritten under it (${result.alreadyCurrent} already were)`,
        );
      });
    });
}
