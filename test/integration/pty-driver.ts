/**
 * A real terminal for tests of what a user types: an interactive bash in a new pty (python3's pty
 * module), driven by steps. Each step may write text into the terminal, set its window size
 * (`resize`: TIOCSWINSZ on the master, so the foreground job gets SIGWINCH, as a terminal window
 * being resized does), then reads until its pattern shows or its timeout passes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const PTY_DRIVER = String.raw`
import fcntl, json, os, pty, re, select, struct, sys, termios, time
steps = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.environ['PS1'] = '$ '
    os.execvp('bash', ['bash', '--norc', '--noprofile', '-i'])
out = b''
def read_until(pattern, timeout):
    global out
    end = time.time() + timeout
    while time.time() < end:
        if pattern and re.search(pattern.encode(), out):
            return True
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return False
            if not chunk:
                return False
            out += chunk
    return pattern is None
missed = None
for step in steps:
    if 'resize' in step:
        rows, cols = step['resize']
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
    if 'write' in step:
        os.write(fd, step['write'].encode())
    if not read_until(step.get('until'), step.get('timeout', 1)):
        missed = step.get('until')
        break
os.write(fd, b'exit\n')
read_until(None, 0.5)
try:
    os.kill(pid, 9)
except ProcessLookupError:
    pass
os.waitpid(pid, 0)
print(json.dumps({'output': out.decode('utf-8', 'replace'), 'missed': missed}))
`;

export interface PtyStep {
  write?: string;
  /** The terminal's new size, [rows, cols], set before `write`. */
  resize?: [number, number];
  until?: string;
  timeout?: number;
}

/** Runs the steps in a new terminal; its whole output, or a failure naming the pattern never seen. */
export async function inPty(steps: PtyStep[]): Promise<string> {
  const { stdout } = await execFileAsync('python3', ['-c', PTY_DRIVER, JSON.stringify(steps)], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  const result = JSON.parse(stdout) as { output: string; missed: string | null };
  assert.equal(result.missed, null, `the terminal never showed ${result.missed}:\n${result.output}`);
  return result.output;
}

/** Arguments quoted for the shell in the terminal. */
export function shellLine(args: string[]): string {
  return args.map((s) => `'${s.replaceAll("'", "'\\''")}'`).join(' ');
}
