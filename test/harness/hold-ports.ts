/**
 * Holds the ports `skiff up` prefers (cli/up/cluster.ts DEFAULT_PORTS) on 127.0.0.1 while
 * run-suite.sh runs test files concurrently, so that every cluster a test starts takes ports the
 * kernel picks, as the other tests' servers do. Without it, two `skiff up` at once can choose the
 * same default port, and one then probes the other's server and takes it for its own (a race of
 * `skiff up` itself); and up-foreground.test.ts, which asserts that its cluster avoided the
 * default ports, would see another test's cluster free them.
 *
 *   node dist/test/harness/hold-ports.js READY-FILE
 *
 * Writes READY-FILE once listening (the ports held, and those something else holds already), then
 * holds them until SIGTERM or SIGINT, or until the process that started it is gone: a holder must
 * never outlive its suite. A port another process holds at the start (a cluster someone runs on
 * this machine) is left alone, even once freed: taking it then could take it from under a
 * `skiff up` that has just chosen it; run-suite.sh runs the files that start clusters one at a
 * time instead.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { DEFAULT_PORTS, HOST } from '../../cli/up/cluster.js';

function hold(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer((socket) => socket.destroy());
    server.once('error', () => resolve(undefined));
    server.listen({ host: HOST, port, exclusive: true }, () => resolve(server));
  });
}

const readyFile = process.argv[2];
if (readyFile === undefined) throw new Error('usage: hold-ports.js READY-FILE');
const ports = [...new Set(Object.values(DEFAULT_PORTS))].sort((a, b) => a - b);
const servers = await Promise.all(ports.map(hold));
const held = ports.filter((_, i) => servers[i] !== undefined);
const taken = ports.filter((_, i) => servers[i] === undefined);
writeFileSync(readyFile, `held ${held.join(' ')}\ntaken ${taken.join(' ')}\n`);

const parent = process.ppid;
const release = () => {
  for (const server of servers) server?.close();
  process.exit(0);
};
process.on('SIGTERM', release);
process.on('SIGINT', release);
// the suite's shell was killed without its traps running: reparented, so let go
setInterval(() => {
  if (process.ppid !== parent) release();
}, 1000);
