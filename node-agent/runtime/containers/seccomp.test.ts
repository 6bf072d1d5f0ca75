import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AUDIT_ARCH_X86_64,
  BPF_JMP_JA,
  BPF_JMP_JEQ_K,
  BPF_JMP_JGE_K,
  BPF_JMP_JSET_K,
  BPF_LD_W_ABS,
  BPF_RET_K,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SYSCALLS_X86_64,
  compileSeccompFilter,
  defaultProfileX86_64,
  defaultSeccompFilter,
  encodeSeccompFilter,
  type BpfInsn,
} from './seccomp.js';
import { DEFAULT_CAPABILITIES } from './defaults.js';

/** Runs a program as the kernel would, for one call: the verdict it returns. */
function run(program: BpfInsn[], nr: number, arg0 = 0n, arch = AUDIT_ARCH_X86_64): number {
  const data = Buffer.alloc(64);
  data.writeUInt32LE(nr >>> 0, 0);
  data.writeUInt32LE(arch >>> 0, 4);
  data.writeBigUInt64LE(arg0, 16);
  let acc = 0;
  for (let pc = 0, steps = 0; pc < program.length; pc++, steps++) {
    assert.ok(steps < 64, 'a program of forward jumps runs at most a few dozen instructions here');
    const { code, jt, jf, k } = program[pc]!;
    switch (code) {
      case BPF_LD_W_ABS:
        acc = data.readUInt32LE(k);
        break;
      case BPF_JMP_JA:
        pc += k;
        break;
      case BPF_JMP_JEQ_K:
        pc += acc === k ? jt : jf;
        break;
      case BPF_JMP_JGE_K:
        pc += acc >= k ? jt : jf;
        break;
      case BPF_JMP_JSET_K:
        pc += (acc & k) !== 0 ? jt : jf;
        break;
      case BPF_RET_K:
        return k;
      default:
        assert.fail(`unexpected opcode ${code}`);
    }
  }
  assert.fail('the program ran off its end');
}

const program = compileSeccompFilter(defaultProfileX86_64());
const NR = SYSCALLS_X86_64;
const EPERM = SECCOMP_RET_ERRNO | 1;
const ENOSYS = SECCOMP_RET_ERRNO | 38;

test('the x86_64 table has the kernel numbers of well-known calls', () => {
  const known: [string, number][] = [
    ['read', 0],
    ['execve', 59],
    ['clone', 56],
    ['personality', 135],
    ['keyctl', 250],
    ['unshare', 272],
    ['bpf', 321],
    ['userfaultfd', 323],
    ['io_uring_setup', 425],
    ['clone3', 435],
    ['mount_setattr', 442],
    ['fchmodat2', 452],
    ['file_setattr', 469],
  ];
  for (const [name, nr] of known) assert.equal(NR[name], nr, name);
  const numbers = Object.values(NR);
  assert.equal(new Set(numbers).size, numbers.length, 'no number appears twice');
});

test('ordinary calls are allowed and the ones Docker blocks return EPERM', () => {
  for (const name of ['read', 'write', 'openat', 'mmap', 'execve', 'wait4', 'fork', 'chroot', 'ptrace'])
    assert.equal(run(program, NR[name]!), SECCOMP_RET_ALLOW, name);
  const blocked = [
    'add_key',
    'keyctl',
    'request_key',
    'bpf',
    'perf_event_open',
    'userfaultfd',
    'open_by_handle_at',
    'kexec_load',
    'kexec_file_load',
    'init_module',
    'finit_module',
    'delete_module',
    'create_module',
    'mount',
    'umount2',
    'move_mount',
    'open_tree',
    'fsopen',
    'fsconfig',
    'fsmount',
    'fspick',
    'mount_setattr',
    'pivot_root',
    'swapon',
    'swapoff',
    'reboot',
    'acct',
    'settimeofday',
    'clock_settime',
    'iopl',
    'ioperm',
    'quotactl',
    'syslog',
    'lookup_dcookie',
    'uselib',
    'ustat',
    'sysfs',
    '_sysctl',
    'nfsservctl',
    'io_uring_setup',
    'io_uring_enter',
    'io_uring_register',
    'unshare',
    'setns',
  ];
  for (const name of blocked) assert.equal(run(program, NR[name]!), EPERM, name);
  // read-only without CAP_SYS_TIME, as Docker allows them
  assert.equal(run(program, NR.adjtimex!), SECCOMP_RET_ALLOW);
  assert.equal(run(program, NR.clock_adjtime!), SECCOMP_RET_ALLOW);
});

test('clone is allowed without namespace flags only; clone3 returns ENOSYS', () => {
  const SIGCHLD = 17n;
  const CLONE_VM_THREAD = 0x00010000n | 0x00000100n | 0x00000800n; // CLONE_THREAD|CLONE_VM|CLONE_SIGHAND
  assert.equal(run(program, NR.clone!, SIGCHLD), SECCOMP_RET_ALLOW);
  assert.equal(run(program, NR.clone!, CLONE_VM_THREAD), SECCOMP_RET_ALLOW);
  for (const flag of [
    0x10000000n,
    0x20000000n,
    0x00020000n,
    0x40000000n,
    0x04000000n,
    0x08000000n,
    0x02000000n,
  ])
    assert.equal(run(program, NR.clone!, SIGCHLD | flag), EPERM, `flag 0x${flag.toString(16)}`);
  assert.equal(run(program, NR.clone3!), ENOSYS);
});

test('personality takes only the values Docker allows, socket refuses AF_VSOCK', () => {
  for (const v of [0n, 8n, 0x20000n, 0x20008n, 0xffffffffn])
    assert.equal(run(program, NR.personality!, v), SECCOMP_RET_ALLOW, `personality ${v}`);
  for (const v of [1n, 0x0040000n /* ADDR_NO_RANDOMIZE */, 0x1_00000000n])
    assert.equal(run(program, NR.personality!, v), EPERM, `personality ${v}`);
  assert.equal(run(program, NR.socket!, 2n), SECCOMP_RET_ALLOW);
  assert.equal(run(program, NR.socket!, 40n), EPERM);
});

test('other architectures and the x32 ABI are killed; unknown numbers return ENOSYS', () => {
  const AUDIT_ARCH_I386 = 0x40000003;
  assert.equal(run(program, 0, 0n, AUDIT_ARCH_I386), SECCOMP_RET_KILL_PROCESS);
  assert.equal(run(program, 0x40000000 | NR.read!), SECCOMP_RET_KILL_PROCESS);
  assert.equal(run(program, 0x40000000 | 520 /* x32 execve */), SECCOMP_RET_KILL_PROCESS);
  for (const nr of [337, 400, 423, 470, 1000, 0x3fffffff, 0xffffffff])
    assert.equal(run(program, nr), ENOSYS, `nr ${nr}`);
});

test('every number in the table gets exactly its rule', () => {
  const profile = defaultProfileX86_64();
  for (const [name, nr] of Object.entries(NR)) {
    const rule = profile.rules.get(nr)!;
    const got = run(program, nr, 0n);
    if (rule.action === 'allow') assert.equal(got, SECCOMP_RET_ALLOW, name);
    else if (rule.action === 'errno') assert.equal(got, SECCOMP_RET_ERRNO | rule.errno, name);
  }
});

test('the program stays small and is encoded as struct sock_filter', () => {
  assert.ok(program.length < 400, `${program.length} instructions`);
  for (const insn of program) assert.ok(insn.jt <= 255 && insn.jf <= 255);
  const bytes = encodeSeccompFilter(program);
  assert.equal(bytes.length, program.length * 8);
  assert.equal(bytes.readUInt16LE(0), BPF_LD_W_ABS);
  assert.equal(bytes.readUInt32LE(4), 4); // arch offset
  assert.equal(bytes.readUInt32LE(12), AUDIT_ARCH_X86_64);
  assert.deepEqual(defaultSeccompFilter('x64'), bytes);
  assert.equal(defaultSeccompFilter('arm64'), undefined);
});

test("capabilities widen the profile as Docker's do: SYS_ADMIN mounts and makes namespaces, SYS_TIME sets the clock", () => {
  const SYS_ADMIN = 21;
  const SYS_TIME = 25;
  const SYS_CHROOT = 18;
  const admin = compileSeccompFilter(defaultProfileX86_64([...DEFAULT_CAPABILITIES, SYS_ADMIN, SYS_TIME]));
  for (const name of ['mount', 'umount2', 'unshare', 'setns', 'sethostname', 'clone3', 'settimeofday'])
    assert.equal(run(admin, NR[name]!), SECCOMP_RET_ALLOW, name);
  assert.equal(run(admin, NR.clone!, 17n | 0x40000000n /* CLONE_NEWNET */), SECCOMP_RET_ALLOW);
  // still refused: nothing keys them on those capabilities
  for (const name of ['kexec_load', 'init_module', 'io_uring_setup', 'keyctl'])
    assert.equal(run(admin, NR[name]!), EPERM, name);
  // a set without SYS_CHROOT loses chroot
  const noChroot = compileSeccompFilter(
    defaultProfileX86_64(DEFAULT_CAPABILITIES.filter((c) => c !== SYS_CHROOT)),
  );
  assert.equal(run(noChroot, NR.chroot!), EPERM);
  assert.equal(run(program, NR.chroot!), SECCOMP_RET_ALLOW);
  // one filter per distinct set, in any order
  assert.equal(
    defaultSeccompFilter('x64', [SYS_TIME, ...DEFAULT_CAPABILITIES]),
    defaultSeccompFilter('x64', [...DEFAULT_CAPABILITIES, SYS_TIME]),
  );
  assert.notDeepEqual(defaultSeccompFilter('x64', [SYS_ADMIN]), defaultSeccompFilter('x64'));
});
