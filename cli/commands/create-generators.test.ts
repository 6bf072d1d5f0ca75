import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatValue } from '../output/format.js';
import {
  containerNameFor,
  generateConfigMap,
  generateDeployment,
  generateJob,
  generateJobFromCronJob,
  generateNamespace,
  generateSecret,
  type SourceReader,
} from './create-generators.js';

/** A file system of these files (and directories holding them), for the data sources. */
function files(entries: Record<string, string | Buffer>, env: Record<string, string> = {}): SourceReader {
  const enoent = (path: string) => Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
  const isDir = (path: string) => Object.keys(entries).some((f) => f.startsWith(`${path}/`));
  return {
    readFile: (path) => {
      const content = entries[path];
      if (content === undefined) throw enoent(path);
      return Buffer.isBuffer(content) ? content : Buffer.from(content);
    },
    isDirectory: (path) => {
      if (!isDir(path) && entries[path] === undefined) throw enoent(path);
      return isDir(path);
    },
    isFile: (path) => entries[path] !== undefined,
    readDir: (path) =>
      Object.keys(entries)
        .filter((f) => f.startsWith(`${path}/`))
        .map((f) => f.slice(path.length + 1)),
    env: (name) => env[name],
  };
}

const none = { literals: [], files: [], envFiles: [] };

// Every expectation below is what `kubectl create … --dry-run=client -o yaml|json` (1.32) printed.
describe('create generators make what kubectl makes', () => {
  test('configmap from literals, files (text and binary) and a directory', () => {
    const reader = files({
      'greet.txt': 'hello\n',
      'bin.dat': Buffer.from([0xff, 0xfe]),
      'd/one': 'x',
      'd/two': 'y',
    });
    assert.equal(
      formatValue(
        generateConfigMap(
          'x',
          undefined,
          { literals: ['z=1'], files: ['greet.txt', 'bin.dat'], envFiles: [] },
          reader,
        ),
        'json',
      ),
      '{\n    "kind": "ConfigMap",\n    "apiVersion": "v1",\n    "metadata": {\n        "name": "x",\n        "creationTimestamp": null\n    },\n    "data": {\n        "greet.txt": "hello\\n",\n        "z": "1"\n    },\n    "binaryData": {\n        "bin.dat": "//4="\n    }\n}\n',
    );
    assert.equal(
      formatValue(generateConfigMap('x', undefined, { ...none, files: ['d'] }, reader), 'yaml'),
      'apiVersion: v1\ndata:\n  one: x\n  two: "y"\nkind: ConfigMap\nmetadata:\n  creationTimestamp: null\n  name: x\n',
    );
    assert.equal(
      formatValue(generateConfigMap('x', 'foo', { ...none, literals: ['a=', 'b=c=d'] }, reader), 'yaml'),
      'apiVersion: v1\ndata:\n  a: ""\n  b: c=d\nkind: ConfigMap\nmetadata:\n  creationTimestamp: null\n  name: x\n  namespace: foo\n',
    );
  });

  test('the data sources’ errors, as kubectl words them', () => {
    const reader = files(
      { 'd/one': 'x', 'e.env': 'A=1\n# c\n\n  B=2 x \nC\nexport D=3\n' },
      { C: 'from-env' },
    );
    const cases: [Parameters<typeof generateConfigMap>[2], RegExp][] = [
      [
        { ...none, literals: ['a=b', 'a=c'] },
        /cannot add key "a", another key by that name already exists in Data for ConfigMap "x"/,
      ],
      [{ ...none, literals: ['ab'] }, /--from-literal ab: invalid literal source, expected key=value/],
      [{ ...none, literals: ['a b=1'] }, /"a b" is not a valid key name for a ConfigMap/],
      [{ ...none, files: ['nofile'] }, /--from-file nofile: error reading nofile: no such file or directory/],
      [{ ...none, files: ['k=d'] }, /cannot give a key name for a directory path/],
      [{ ...none, envFiles: ['e.env'] }, /line 6: "export D" is not a valid key name/],
    ];
    for (const [sources, reason] of cases)
      assert.throws(() => generateConfigMap('x', undefined, sources, reader), reason);
    const env = generateConfigMap(
      'x',
      undefined,
      { ...none, envFiles: ['e.env'] },
      files({ 'e.env': 'A=1\n# c\n\n  B=2 x \nC\nD\n' }, { C: 'c' }),
    );
    assert.deepEqual(env.data, { A: '1', B: '2 x ', C: 'c' });
  });

  test('secret generic: values base64, type kept, no data when none', () => {
    assert.equal(
      formatValue(
        generateSecret(
          's',
          undefined,
          'kubernetes.io/tls',
          { ...none, files: ['greet.txt'] },
          files({ 'greet.txt': 'hello\n' }),
        ),
        'yaml',
      ),
      'apiVersion: v1\ndata:\n  greet.txt: aGVsbG8K\nkind: Secret\nmetadata:\n  creationTimestamp: null\n  name: s\ntype: kubernetes.io/tls\n',
    );
    assert.equal(
      formatValue(generateSecret('s', undefined, undefined, none, files({})), 'yaml'),
      'apiVersion: v1\nkind: Secret\nmetadata:\n  creationTimestamp: null\n  name: s\n',
    );
  });

  test('namespace, deployment, job', () => {
    assert.equal(
      formatValue(generateNamespace('n'), 'yaml'),
      'apiVersion: v1\nkind: Namespace\nmetadata:\n  creationTimestamp: null\n  name: "n"\nspec: {}\nstatus: {}\n',
    );
    assert.equal(
      formatValue(
        generateDeployment('web', undefined, { images: ['nginx'], replicas: 2, port: 80, command: [] }),
        'json',
      ),
      `{
    "kind": "Deployment",
    "apiVersion": "apps/v1",
    "metadata": {
        "name": "web",
        "creationTimestamp": null,
        "labels": {
            "app": "web"
        }
    },
    "spec": {
        "replicas": 2,
        "selector": {
            "matchLabels": {
                "app": "web"
            }
        },
        "template": {
            "metadata": {
                "creationTimestamp": null,
                "labels": {
                    "app": "web"
                }
            },
            "spec": {
                "containers": [
                    {
                        "name": "nginx",
                        "image": "nginx",
                        "ports": [
                            {
                                "containerPort": 80
                            }
                        ],
                        "resources": {}
                    }
                ]
            }
        },
        "strategy": {}
    },
    "status": {}
}
`,
    );
    assert.equal(
      formatValue(generateJob('j', undefined, { image: 'busybox', command: ['echo', 'hi'] }), 'yaml'),
      'apiVersion: batch/v1\nkind: Job\nmetadata:\n  creationTimestamp: null\n  name: j\nspec:\n  template:\n    metadata:\n      creationTimestamp: null\n    spec:\n      containers:\n      - command:\n        - echo\n        - hi\n        image: busybox\n        name: j\n        resources: {}\n      restartPolicy: Never\nstatus: {}\n',
    );
    assert.equal(containerNameFor('registry.io:5000/team/app:v1@sha256:abc'), 'app');
    assert.throws(
      () => generateDeployment('d', undefined, { images: [], replicas: 1, command: [] }),
      /--image is required/,
    );
    assert.throws(
      () => generateDeployment('d', undefined, { images: ['a', 'b'], replicas: 1, command: ['x'] }),
      /cannot give several --image and a command/,
    );
  });

  test('a job from a cronjob takes its template, marks it manual and is owned by it', () => {
    const job = generateJobFromCronJob('run-1', 'ns', {
      metadata: { name: 'nightly', uid: 'u-1' },
      spec: {
        jobTemplate: {
          metadata: { labels: { a: 'b' } },
          spec: { template: { spec: { restartPolicy: 'Never' } } },
        },
      },
    }) as { metadata: Record<string, unknown>; spec: unknown };
    assert.deepEqual(job.metadata, {
      name: 'run-1',
      namespace: 'ns',
      creationTimestamp: null,
      labels: { a: 'b' },
      annotations: { 'cronjob.kubernetes.io/instantiate': 'manual' },
      ownerReferences: [
        {
          apiVersion: 'batch/v1',
          kind: 'CronJob',
          name: 'nightly',
          uid: 'u-1',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    });
    assert.deepEqual(job.spec, { template: { spec: { restartPolicy: 'Never' } } });
  });
});
