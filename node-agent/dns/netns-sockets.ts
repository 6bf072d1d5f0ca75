/**
 * A UDP socket and a TCP listener bound in another network namespace, for the node's DNS server
 * where the node's network is a namespace the agent is not in (`--host-netns`: the in-process
 * tests). A socket belongs to the namespace it was made in, whoever uses it later, and
 * Node cannot enter one; so a short-lived Node process started in it (`nsenter --net`) binds both
 * and hands them to this process over Node's IPC channel (child_process handle passing), then
 * exits. The server then runs here as anywhere else.
 */
import { spawn } from 'node:child_process';
import type { Socket } from 'node:dgram';
import type { Server } from 'node:net';
import { UnavailableError } from '../../proto/errors.js';

/** What the child runs: bind both at ADDRESS:PORT (UDP first: port 0 is its pick), send both, exit. */
const BINDER = `
const dgram = require('node:dgram'), net = require('node:net');
const address = process.env.SKIFF_DNS_ADDRESS, port = Number(process.env.SKIFF_DNS_PORT);
const fail = (err) => { process.send({ error: String(err && err.message || err) }, () => process.exit(1)); };
const udp = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
udp.once('error', fail);
udp.bind(port, address, () => {
  const tcp = net.createServer();
  tcp.once('error', fail);
  tcp.listen(udp.address().port, address, () =>
    process.send({ kind: 'udp' }, udp, () => process.send({ kind: 'tcp' }, tcp, () => process.exit(0))));
});
`;

export async function bindInNetns(
  netnsPath: string,
  address: string,
  port: number,
): Promise<{ udp: Socket; tcp: Server }> {
  const child = spawn('nsenter', [`--net=${netnsPath}`, '--', process.execPath, '-e', BINDER], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { ...process.env, SKIFF_DNS_ADDRESS: address, SKIFF_DNS_PORT: String(port) },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const what = `bind the cluster DNS at ${address}:${port} in ${netnsPath}`;
  return new Promise((resolve, reject) => {
    let udp: Socket | undefined;
    let tcp: Server | undefined;
    let failure: string | undefined;
    child.on('message', (message: { kind?: string; error?: string }, handle: unknown) => {
      if (message.error !== undefined) failure = message.error;
      else if (message.kind === 'udp') udp = handle as Socket;
      else if (message.kind === 'tcp') tcp = handle as Server;
    });
    child.on('error', (err) =>
      reject(new UnavailableError(`${what}: ${err.message}`, netnsPath, { cause: err })),
    );
    child.on('exit', (code) => {
      if (udp !== undefined && tcp !== undefined) return resolve({ udp, tcp });
      udp?.close();
      tcp?.close();
      reject(
        new UnavailableError(
          `${what}: ${failure ?? (stderr.trim() || `the binder exited ${code}`)}`,
          netnsPath,
        ),
      );
    });
  });
}
