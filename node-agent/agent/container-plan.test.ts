import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Container, Pod } from '../../proto/gen/types.js';
import {
  PodConfigError,
  checkNonRoot,
  containerArgv,
  containerEnv,
  containerLimits,
  containerSecurity,
  expandReferences,
  referencedObjects,
  resourceField,
} from './container-plan.js';

const placement = { nodeName: 'n1', hostIP: '10.0.0.5', podIP: '10.244.1.7' };
const none = { configMaps: new Map(), secrets: new Map() };

function pod(containers: Pod['spec']['containers'], extra: Partial<Pod['spec']> = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'shop', uid: 'u1', labels: { app: 'web' } },
    spec: { containers, ...extra },
  } as Pod;
}

test('$(VAR) expands defined variables, keeps undefined ones, and $$ escapes', () => {
  const env = new Map([
    ['A', 'x'],
    ['B', 'y'],
  ]);
  assert.equal(expandReferences('$(A)-$(B)', env), 'x-y');
  assert.equal(expandReferences('$(MISSING)', env), '$(MISSING)');
  assert.equal(expandReferences('$$(A)', env), '$(A)');
  assert.equal(expandReferences('cost $5 $(A', env), 'cost $5 $(A');
});

test("command replaces the image's entrypoint and drops its cmd; args alone replace cmd", () => {
  const image = { Entrypoint: ['/entry'], Cmd: ['--default'] };
  const env = new Map([['PORT', '80']]);
  assert.deepEqual(containerArgv({ name: 'c', command: ['/bin/app'] }, image, env, 'c'), ['/bin/app']);
  assert.deepEqual(
    containerArgv({ name: 'c', command: ['/bin/app'], args: ['--port=$(PORT)'] }, image, env, 'c'),
    ['/bin/app', '--port=80'],
  );
  assert.deepEqual(containerArgv({ name: 'c', args: ['--other'] }, image, env, 'c'), ['/entry', '--other']);
  assert.deepEqual(containerArgv({ name: 'c' }, image, env, 'c'), ['/entry', '--default']);
  assert.throws(
    () => containerArgv({ name: 'c' }, {}, env, 'spec.containers[0]'),
    (err: unknown) => err instanceof PodConfigError && err.field === 'spec.containers[0].command',
  );
});

test('env: envFrom first with prefixes, env after (later wins), valueFrom sources, $(VAR) of earlier entries', () => {
  const refs = {
    configMaps: new Map([
      [
        'cfg',
        {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'cfg' },
          data: { MODE: 'fast', LEVEL: '3' },
        } as never,
      ],
    ]),
    secrets: new Map([
      [
        'sec',
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'sec' },
          data: { token: Buffer.from('t0k').toString('base64') },
        } as never,
      ],
    ]),
  };
  const p = pod([
    {
      name: 'app',
      envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'CFG_' }],
      env: [
        { name: 'CFG_MODE', value: 'slow' },
        { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'sec', key: 'token' } } },
        { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
        { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        { name: 'URL', value: 'http://$(IP):$(CFG_LEVEL)' },
        { name: 'OPT', valueFrom: { configMapKeyRef: { name: 'absent', key: 'x', optional: true } } },
      ],
    },
  ]);
  const env = containerEnv(p, p.spec.containers![0]!, refs, placement, 'spec.containers[0]');
  assert.equal(env.get('CFG_MODE'), 'slow');
  assert.equal(env.get('CFG_LEVEL'), '3');
  assert.equal(env.get('TOKEN'), 't0k');
  assert.equal(env.get('NODE'), 'n1');
  assert.equal(env.get('APP'), 'web');
  assert.equal(env.get('URL'), 'http://10.244.1.7:3');
  assert.ok(!env.has('OPT'));
  assert.deepEqual([...referencedObjects(p).configMaps], ['cfg', 'absent']);
});

test('a missing reference is a PodConfigError naming the field', () => {
  const p = pod([
    { name: 'app', env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'sec', key: 'k' } } }] },
  ]);
  assert.throws(
    () => containerEnv(p, p.spec.containers![0]!, none, placement, 'spec.containers[0]'),
    (err: unknown) =>
      err instanceof PodConfigError &&
      err.field === 'spec.containers[0].env[0].valueFrom.secretKeyRef' &&
      /secret "sec" not found/.test(err.message),
  );
  assert.throws(
    () =>
      containerEnv(
        p,
        { name: 'x', env: [{ name: 'Y', valueFrom: { fieldRef: { fieldPath: 'spec.bogus' } } }] },
        none,
        placement,
        'c',
      ),
    /not a field the downward API offers/,
  );
});

test('limits become cgroup limits; the security context becomes the user', () => {
  const p = pod(
    [
      {
        name: 'app',
        resources: { limits: { memory: '64Mi', cpu: '250m' } },
        securityContext: { runAsUser: 1000, readOnlyRootFilesystem: true },
      },
    ],
    {
      securityContext: { runAsGroup: 3000, supplementalGroups: [4000] },
    },
  );
  assert.deepEqual(containerLimits(p, p.spec.containers![0]!, 'c'), {
    readOnly: true,
    memoryBytes: 64 * 1024 * 1024,
    cpus: 0.25,
    user: { uid: 1000, gid: 3000, additionalGids: [4000] },
  });
  assert.equal(
    resourceField({ name: 'x', resources: { limits: { memory: '64Mi' } } }, 'limits.memory', '1Mi', 'c'),
    '64',
  );
  assert.equal(
    resourceField({ name: 'x', resources: { limits: { cpu: '250m' } } }, 'limits.cpu', undefined, 'c'),
    '1',
  );
});

test('capabilities, allowPrivilegeEscalation and privileged become runtime options; privileged needs the node to allow it', () => {
  const node = { allowPrivileged: false };
  const sec = (securityContext: NonNullable<Container['securityContext']>, n = node) =>
    containerSecurity({ name: 'x', securityContext }, 'spec.containers[0]', n);
  assert.deepEqual(sec({}), { noNewPrivileges: false }, 'unset: escalation allowed, as in Kubernetes');
  assert.deepEqual(sec({ capabilities: { add: ['NET_ADMIN'], drop: ['NET_RAW', 'all'] } }), {
    capAdd: ['NET_ADMIN'],
    capDrop: ['NET_RAW', 'all'],
    noNewPrivileges: false,
  });
  assert.deepEqual(sec({ allowPrivilegeEscalation: false }), { noNewPrivileges: true });
  assert.deepEqual(sec({ allowPrivilegeEscalation: true }), { noNewPrivileges: false });
  assert.throws(
    () => sec({ capabilities: { drop: ['CHOWN', 'NET_WIZARD'] } }),
    (err: unknown) =>
      err instanceof PodConfigError &&
      err.field === 'spec.containers[0].securityContext.capabilities.drop[1]' &&
      /"NET_WIZARD" is not a Linux capability/.test(err.message),
  );
  assert.throws(
    () => sec({ privileged: true }),
    (err: unknown) =>
      err instanceof PodConfigError &&
      err.field === 'spec.containers[0].securityContext.privileged' &&
      /--allow-privileged/.test(err.message),
  );
  assert.deepEqual(sec({ privileged: true, capabilities: { drop: ['ALL'] } }, { allowPrivileged: true }), {
    privileged: true,
  });
});

test('runAsNonRoot refuses an image that runs as root or by name', () => {
  const p = pod([{ name: 'app', securityContext: { runAsNonRoot: true } }]);
  assert.throws(() => checkNonRoot(p, p.spec.containers![0]!, '', 'c'), /will run as root/);
  assert.throws(() => checkNonRoot(p, p.spec.containers![0]!, 'nginx', 'c'), /non-numeric user/);
  checkNonRoot(p, p.spec.containers![0]!, '101', 'c');
});
