/**
 * `skiff config view|get-contexts|current-context|use-context|delete-context` (the client config's
 * contexts, as kubectl's) and `skiff cluster-info` (where the cluster is).
 */
import type { Command } from 'commander';
import { isUnixAddress } from '../../proto/api-address.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../proto/errors.js';
import {
  defaultConfigPath,
  deleteContext,
  readConfigDocument,
  redactDocument,
  useContext,
  type ConfigDocument,
} from '../config.js';
import { formatValue, parseOutput } from '../output/format.js';
import { executeJsonPath } from '../output/jsonpath.js';
import { renderTable } from '../output/table.js';
import { globalOptions, out, withClient, write } from './context.js';

/** The document as YAML/JSON shows it: the flat form as it is, contexts in kubeconfig's layout. */
function viewOf(doc: ConfigDocument, minify: boolean, current: string): Record<string, unknown> {
  if (doc.legacy) {
    const cluster = doc.clusters[0]?.cluster;
    const flat: Record<string, string> = {};
    if (cluster?.server) flat.server = cluster.server;
    if (doc.users[0]?.user.token) flat.token = doc.users[0].user.token;
    if (cluster?.http !== undefined) flat.http = cluster.http;
    if (cluster?.ca !== undefined) flat.ca = cluster.ca;
    return flat;
  }
  let { clusters, users, contexts } = doc;
  if (minify) {
    contexts = contexts.filter((c) => c.name === current);
    if (contexts.length === 0) {
      throw new FailedPreconditionError(
        current === ''
          ? 'config view --minify: no current context: run `skiff config use-context NAME` or pass --context'
          : `config view --minify: no context "${current}" in the client config`,
      );
    }
    clusters = clusters.filter((c) => c.name === contexts[0]!.context.cluster);
    users = users.filter((u) => u.name === contexts[0]!.context.user);
  }
  return {
    apiVersion: 'v1',
    clusters: clusters.map(({ name, cluster }) => ({
      cluster: {
        ...(cluster.ca !== undefined ? { 'certificate-authority': cluster.ca } : {}),
        ...(cluster.http !== undefined ? { http: cluster.http } : {}),
        server: cluster.server,
        ...(cluster.tlsServer !== undefined ? { 'tls-server': cluster.tlsServer } : {}),
      },
      name,
    })),
    contexts: contexts.map(({ name, context }) => ({ context, name })),
    'current-context': minify ? current : doc.currentContext,
    kind: 'Config',
    users: users.map(({ name, user }) => ({ name, user })),
  };
}

function readOrExplain(path: string): ConfigDocument {
  const doc = readConfigDocument(path);
  if (doc === undefined) {
    throw new FailedPreconditionError(
      `read client config ${path}: no such file: run \`skiff up\` or pass --server/--token`,
    );
  }
  return doc;
}

export function registerConfig(program: Command): void {
  const config = program
    .command('config')
    .description('show the client config and switch between its contexts (clusters)');
  config
    .command('view')
    .description(`print the client config ($SKIFF_CONFIG, default ~/.skiff/config); tokens are redacted`)
    .option('--raw', 'print the tokens too')
    .option('--minify', 'only the context in use (--context, else the current one)')
    .option('-o, --output <format>', 'yaml (default), json, jsonpath=TEMPLATE or jsonpath-file=FILE')
    .action((opts: { raw?: boolean; minify?: boolean; output?: string }, command: Command) => {
      const output = parseOutput(opts.output ?? 'yaml', ['json', 'yaml', 'jsonpath']);
      const doc = readOrExplain(defaultConfigPath());
      const current = globalOptions(command).context ?? doc.currentContext;
      const view = viewOf(opts.raw ? doc : redactDocument(doc), !!opts.minify, current);
      if (output.type === 'jsonpath') write(executeJsonPath(output.template, view));
      else out(formatValue(view, output.type === 'json' ? 'json' : 'yaml'));
    });
  config
    .command('get-contexts')
    .description('list the contexts; * marks the current one')
    .argument('[names...]', 'only these contexts')
    .option('-o, --output <format>', 'name: only the names')
    .option('--no-headers', 'no header line')
    .action((names: string[], opts: { output?: string; headers: boolean }) => {
      if (opts.output !== undefined && opts.output !== 'name')
        throw new InvalidArgumentError(
          `config get-contexts: -o ${opts.output}: only -o name is supported`,
          'output',
        );
      const path = defaultConfigPath();
      const doc = readConfigDocument(path);
      const contexts = doc?.contexts ?? [];
      const missing = names.filter((n) => !contexts.some((c) => c.name === n));
      const shown = names.length ? contexts.filter((c) => names.includes(c.name)) : contexts;
      if (opts.output === 'name') {
        if (shown.length) out(shown.map((c) => c.name).join('\n'));
      } else {
        const rows = shown.map((c) => [
          c.name === doc?.currentContext ? '*' : '',
          c.name,
          c.context.cluster,
          c.context.user,
          '',
        ]);
        const table = renderTable(['CURRENT', 'NAME', 'CLUSTER', 'AUTHINFO', 'NAMESPACE'], rows);
        const lines = table.split('\n');
        write(opts.headers ? table : lines.slice(1).join('\n'));
      }
      if (missing.length) {
        throw new InvalidArgumentError(
          `config get-contexts: no context ${missing.map((n) => `"${n}"`).join(', ')} in ${path}`,
          'names',
        );
      }
    });
  config
    .command('current-context')
    .description('print the name of the current context')
    .action(() => {
      const path = defaultConfigPath();
      const current = readConfigDocument(path)?.currentContext ?? '';
      if (current === '')
        throw new FailedPreconditionError(
          `current-context is not set in ${path}: run \`skiff config use-context NAME\``,
        );
      out(current);
    });
  config
    .command('use-context')
    .description('make NAME the current context: every later command talks to its cluster')
    .argument('<name>', 'a context (see `skiff config get-contexts`)')
    .action(async (name: string) => {
      const path = defaultConfigPath();
      readOrExplain(path);
      await useContext(name, path);
      out(`Switched to context "${name}".`);
    });
  config
    .command('delete-context')
    .description('remove a context, and its cluster and user when no other context uses them')
    .argument('<name>', 'a context (see `skiff config get-contexts`)')
    .action(async (name: string) => {
      const path = defaultConfigPath();
      const wasCurrent = await deleteContext(name, path);
      if (wasCurrent)
        process.stderr.write(
          'warning: this removed your current context, use `skiff config use-context NAME` to select a different one\n',
        );
      out(`deleted context ${name} from ${path}`);
    });
}

export function registerClusterInfo(program: Command): void {
  program
    .command('cluster-info')
    .description(
      "the API's addresses (the one called, and its TLS address beside a socket) and the HTTP address (/healthz, /readyz, /metrics)",
    )
    .option('-o, --output <format>', 'json')
    .action(async (opts: { output?: string }, command: Command) => {
      await withClient(command, async (api, config) => {
        // Says "running" only after the server answered.
        await api.version();
        // beside the socket, the address other machines and node agents reach it at
        const tlsApi = isUnixAddress(config.server) ? config.tlsServer : undefined;
        if (opts.output === 'json') {
          out(
            JSON.stringify({
              api: config.server,
              ...(tlsApi !== undefined ? { tlsApi } : {}),
              http: config.http ?? null,
            }),
          );
          return;
        }
        out(`skiff control plane is running at ${config.server}`);
        if (tlsApi !== undefined) out(`Its API over TLS (for other machines and node agents) at ${tlsApi}`);
        out(
          config.http
            ? `Health (/healthz, /readyz) and metrics (/metrics) at ${config.http}`
            : 'HTTP address unknown: not recorded in the client config (written by `skiff up`)',
        );
      });
    });
}
