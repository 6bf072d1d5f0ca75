import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '../proto/errors.js';
import {
  ManifestError,
  manifestFieldError,
  parseFieldPath,
  parseManifestSource,
  readManifestSources,
} from './manifests.js';

const multi = `apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: web
          image: busybox
          bogus: 1
---
`;

describe('parseManifestSource', () => {
  test('splits documents and skips empty ones', () => {
    const docs = parseManifestSource({ name: 'a.yaml', text: multi });
    assert.equal(docs.length, 2);
    assert.equal(docs[0]!.documentIndex, 1);
    assert.equal(docs[1]!.documentIndex, 2);
    assert.equal((docs[1]!.object.metadata as { name: string }).name, 'web');
  });

  test('locates a field path at its key, and a missing field at its parent', () => {
    const [, deploy] = parseManifestSource({ name: 'a.yaml', text: multi });
    assert.deepEqual(deploy!.locate('spec.template.spec.containers[0].bogus'), { line: 18, column: 11 });
    assert.deepEqual(deploy!.locate('spec.replicas'), { line: 12, column: 3 });
    assert.deepEqual(deploy!.locate('spec.selector'), { line: 11, column: 1 });
  });

  test('field errors name file, document, line, column and path', () => {
    const [, deploy] = parseManifestSource({ name: 'a.yaml', text: multi });
    const err = manifestFieldError(
      deploy!,
      new InvalidArgumentError('unknown field', 'spec.template.spec.containers[0].bogus'),
    );
    assert.equal(
      err.message,
      'a.yaml: document 2 (line 18, column 11): spec.template.spec.containers[0].bogus: unknown field',
    );
    assert.equal(err.field, 'spec.template.spec.containers[0].bogus');
  });

  test('a YAML syntax error names document, line and column', () => {
    const text = 'apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: [unclosed\n';
    assert.throws(
      () => parseManifestSource({ name: 'bad.yaml', text }),
      (err: unknown) =>
        err instanceof ManifestError &&
        err.documentIndex === 2 &&
        /^bad\.yaml: document 2 \(line \d+, column \d+\): YAML syntax error/.test(err.message),
    );
  });

  test('duplicate keys are a syntax error naming the key and where it repeats', () => {
    assert.throws(() => parseManifestSource({ name: 'd.yaml', text: 'kind: A\nkind: B\n' }), ManifestError);
    assert.throws(
      () =>
        parseManifestSource({
          name: 'n.yaml',
          text: 'kind: A\nmetadata:\n  labels:\n    a: "1"\n    b: "2"\n    a: "3"\n',
        }),
      /n\.yaml: document 1 \(line 6, column 5\): YAML syntax error: mapping key "a" already defined$/,
    );
    // Merge keys may repeat, and a merged key may be overridden.
    const [doc] = parseManifestSource({
      name: 'm.yaml',
      text: 'a: &a {x: 1}\nb: &b {z: 2}\nc:\n  <<: *a\n  <<: *b\n  x: 3\n',
    });
    assert.deepEqual(doc!.object.c, { x: 3, z: 2 });
  });

  test('YAML is read as kubectl reads it: 1.1 octals, booleans and merges; no base 60, no timestamps', () => {
    const text = [
      'defaultMode: 0400',
      'other: 0644',
      'go: 0o17',
      'quoted: "0644"',
      'flags: [yes, no, on, off, y, n, True]',
      'ports: 22:22',
      'when: 2026-01-01T00:00:00Z',
      'big: 1_000',
      'hex: 0x1F',
      'base: &base {cpu: 100m, memory: 64Mi}',
      'limits:',
      '  <<: *base',
      '  memory: 128Mi',
      '',
    ].join('\n');
    const [doc] = parseManifestSource({ name: 'k.yaml', text });
    assert.deepEqual(doc!.object, {
      defaultMode: 256,
      other: 420,
      go: 15,
      quoted: '0644',
      flags: [true, false, true, false, true, false, true],
      ports: '22:22',
      when: '2026-01-01T00:00:00Z',
      big: 1000,
      hex: 31,
      base: { cpu: '100m', memory: '64Mi' },
      limits: { cpu: '100m', memory: '128Mi' },
    });
  });

  test('a mapping with 50,000 keys is read in linear time', () => {
    let text = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: many\n  labels:\n';
    for (let i = 0; i < 50_000; i++) text += `    k${i}: v\n`;
    // CPU time, the work done: wall time also counts the time other processes had the CPU,
    // seconds on a loaded machine (the suite runs test files concurrently)
    const started = process.cpuUsage();
    const [doc] = parseManifestSource({ name: 'big.yaml', text });
    const spent = process.cpuUsage(started);
    const elapsed = (spent.user + spent.system) / 1000;
    assert.equal(Object.keys((doc!.object.metadata as { labels: object }).labels).length, 50_000);
    // The parser's own duplicate check took ~27 s here; linear reading takes about one.
    assert.ok(elapsed < 6000, `50,000 keys took ${Math.round(elapsed)} ms of CPU`);
  });

  test('a scalar document is refused', () => {
    assert.throws(() => parseManifestSource({ name: 's.yaml', text: 'hello\n' }), /must be a mapping/);
  });

  test('a List expands into items, located under items[i]', () => {
    const text =
      'apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: a}\n';
    const docs = parseManifestSource({ name: 'l.yaml', text });
    assert.equal(docs.length, 1);
    assert.equal(docs[0]!.object.kind, 'ConfigMap');
    assert.deepEqual(docs[0]!.locate('metadata'), { line: 6, column: 5 });
    const err = manifestFieldError(docs[0]!, new InvalidArgumentError('bad name', 'metadata.name'));
    assert.match(err.message, /items\[0\]\.metadata\.name: bad name/);
  });

  test('JSON documents parse too', () => {
    const docs = parseManifestSource({ name: 'x.json', text: '{"apiVersion":"v1","kind":"ConfigMap"}' });
    assert.equal(docs[0]!.object.kind, 'ConfigMap');
  });

  test('hostile nesting is a ManifestError, not a crash', () => {
    const text = `a: ${'['.repeat(200_000)}${']'.repeat(200_000)}\n`;
    assert.throws(() => parseManifestSource({ name: 'deep.yaml', text }), ManifestError);
    const indented = 'a:\n' + Array.from({ length: 3000 }, (_, i) => `${' '.repeat(i + 2)}b:`).join('\n');
    for (const deep of [`a: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`, indented]) {
      assert.throws(
        () => parseManifestSource({ name: 'deep.yaml', text: deep }),
        (err: unknown) =>
          err instanceof ManifestError &&
          /^deep\.yaml: document 1 \(line \d+, column \d+\): too deeply nested/.test(err.message) &&
          !/call stack/.test(err.message),
      );
    }
  });

  test('an alias bomb is refused, not expanded', () => {
    const text = [
      'a: &a [x,x,x,x,x,x,x,x,x,x]',
      ...Array.from({ length: 9 }, (_, i) => {
        const prev = i === 0 ? 'a' : `l${i - 1}`;
        return `l${i}: &l${i} [*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev}]`;
      }),
    ].join('\n');
    assert.throws(() => parseManifestSource({ name: 'bomb.yaml', text }), ManifestError);
  });
});

test('parseFieldPath', () => {
  assert.deepEqual(parseFieldPath('spec.containers[0].image'), ['spec', 'containers', 0, 'image']);
  assert.deepEqual(parseFieldPath('metadata.labels["app.kubernetes.io/name"]'), [
    'metadata',
    'labels',
    'app.kubernetes.io/name',
  ]);
  assert.deepEqual(parseFieldPath(''), []);
});

describe('readManifestSources', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-manifests-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a device, a FIFO or a file over 16 MiB is refused at once, naming the file (and the limit)', async () => {
    const fifo = join(dir, 'pipe.yaml');
    execFileSync('mkfifo', [fifo]);
    const huge = join(dir, 'huge.yaml');
    writeFileSync(huge, '');
    truncateSync(huge, 16 * 1024 * 1024 + 1);
    const started = Date.now();
    for (const [path, reason] of [
      ['/dev/zero', /\/dev\/zero: not a regular file/],
      [fifo, /pipe\.yaml: not a regular file/],
      [huge, /huge\.yaml: larger than the 16777216 bytes allowed/],
    ] as const) {
      await assert.rejects(
        readManifestSources([path], async () => ''),
        (err: unknown) =>
          err instanceof InvalidArgumentError && err.field === 'filename' && reason.test(err.message),
        path,
      );
    }
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });

  test('directories give their manifest files sorted; stdin is read once', async () => {
    mkdirSync(join(dir, 'm'));
    writeFileSync(join(dir, 'm', 'b.yml'), 'kind: B\n');
    writeFileSync(join(dir, 'm', 'a.yaml'), 'kind: A\n');
    writeFileSync(join(dir, 'm', 'c.json'), '{}');
    writeFileSync(join(dir, 'm', 'notes.txt'), 'x');
    const sources = await readManifestSources([join(dir, 'm'), '-'], async () => 'kind: S\n');
    assert.deepEqual(
      sources.map((s) => s.name),
      [join(dir, 'm', 'a.yaml'), join(dir, 'm', 'b.yml'), join(dir, 'm', 'c.json'), '<stdin>'],
    );
    await assert.rejects(
      readManifestSources(['-', '-'], async () => ''),
      /stdin can be read once/,
    );
  });

  test('a missing file is named', async () => {
    await assert.rejects(
      readManifestSources([join(dir, 'nope.yaml')]),
      /nope\.yaml: no such file or directory/,
    );
  });
});
