/**
 * `skiff token create|list|revoke`: the cluster's API tokens (skiff.v1.Admin; admin tokens only).
 * A token is shown once, when it is made; the control plane keeps its hash. Roles: admin, edit
 * (every object verb), view (get, list, watch) and join (a node agent's first certificate: the
 * token is printed as `K10<CA hash>::<token>`, and lives 24 hours unless --ttl says otherwise).
 */
import type { Command } from 'commander';
import { isUnixAddress } from '../../proto/api-address.js';
import { InvalidArgumentError } from '../../proto/errors.js';
import { age, humanDuration } from '../../proto/printing/age.js';
import type { ApiTokenInfo } from '../../proto/client.js';
import { renderTable } from '../output/table.js';
import { out, parseDurationOption, withClient } from './context.js';

/** How long a join token lives unless --ttl says otherwise (kubeadm's and k3s's default). */
const JOIN_TTL_MS = 24 * 3600 * 1000;

function checkOutput(verb: string, output: string | undefined): void {
  if (output !== undefined && output !== 'json') {
    throw new InvalidArgumentError(
      `skiff token ${verb}: output format ${JSON.stringify(output)} is not supported; use -o json or no -o`,
      'output',
    );
  }
}

function expiry(info: ApiTokenInfo, now: number): string {
  if (info.expiresAt === '') return '<never>';
  const left = Date.parse(info.expiresAt) - now;
  return left <= 0 ? 'expired' : `in ${humanDuration(left)}`;
}

export function registerToken(program: Command): void {
  const token = program.command('token').description("the cluster's API tokens (admin token)");
  token
    .command('create')
    .description('make an API token and print it (shown this once)')
    .requiredOption(
      '--role <role>',
      "admin, edit (every object verb), view (get, list, watch) or join (a node agent's first certificate)",
    )
    .option(
      '--ttl <duration>',
      'how long it works (24h, 90m; 0: until revoked); default: until revoked, 24h for join',
      parseDurationOption('--ttl'),
    )
    .option('--name <name>', 'its name (a DNS label); default <role>-<random>')
    .option('-o, --output <format>', 'json: name, role, times and the token')
    .action(
      async (opts: { role: string; ttl?: number; name?: string; output?: string }, command: Command) => {
        checkOutput('create', opts.output);
        if (opts.ttl !== undefined && opts.ttl % 1000 !== 0) {
          throw new InvalidArgumentError(
            `skiff token create: --ttl must be whole seconds, got ${opts.ttl} ms`,
            'ttl',
          );
        }
        const ttl = opts.ttl ?? (opts.role === 'join' ? JOIN_TTL_MS : undefined);
        await withClient(command, async (api, config) => {
          const created = await api.createToken({
            role: opts.role,
            ...(opts.name !== undefined ? { name: opts.name } : {}),
            ...(ttl !== undefined ? { ttlSeconds: ttl / 1000 } : {}),
          });
          if (opts.output === 'json') out(JSON.stringify({ ...created.info, token: created.token }, null, 2));
          else out(created.token);
          process.stderr.write(
            `token "${created.info.name}" (${created.info.role}) created; it expires ${expiry(created.info, Date.now())}; it is not shown again\n`,
          );
          if (created.info.role === 'join') {
            // a node joins over TLS: the socket is this machine's only
            const server = !isUnixAddress(config.server)
              ? config.server
              : (config.tlsServer ?? "<the API's TLS address, host:port>");
            process.stderr.write(
              `a node joins with: skiff agent --server ${server} --token <the token>\n(it carries the cluster CA's hash: the agent trusts no server that cannot show that CA)\n`,
            );
          }
        });
      },
    );
  token
    .command('list')
    .description('the tokens: name, role, age, expiry (never the tokens themselves)')
    .option('-o, --output <format>', 'json')
    .action(async (opts: { output?: string }, command: Command) => {
      checkOutput('list', opts.output);
      await withClient(command, async (api) => {
        const tokens = await api.listTokens();
        if (opts.output === 'json') {
          out(JSON.stringify(tokens, null, 2));
          return;
        }
        const now = Date.now();
        process.stdout.write(
          renderTable(
            ['NAME', 'ROLE', 'AGE', 'EXPIRES'],
            tokens.map((info) => [info.name, info.role, age(info.createdAt, now), expiry(info, now)]),
          ),
        );
      });
    });
  token
    .command('revoke')
    .description('stop tokens working (at once on this control plane, within 30 s on others)')
    .argument('<name...>', 'token names (skiff token list)')
    .action(async (names: string[], _opts: unknown, command: Command) => {
      await withClient(command, async (api) => {
        for (const name of names) {
          const revoked = await api.revokeToken(name);
          out(`token "${revoked.name}" (${revoked.role}) revoked`);
        }
      });
    });
}
