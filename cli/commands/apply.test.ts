import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeObject, parseObject } from '../../proto/objects.js';
import { withLastApplied } from '../apply.js';
import { parseManifestSource } from '../manifests.js';
import { loadManifests, orderForApply, prepareDocument } from './apply.js';

const one = (text: string) => parseManifestSource({ name: 'm.yaml', text })[0]!;

describe('prepareDocument', () => {
  test('namespaced objects take the manifest namespace, else -n, else default', () => {
    const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n';
    assert.equal(prepareDocument(one(cm), undefined).namespace, 'default');
    assert.equal(prepareDocument(one(cm), 'web').namespace, 'web');
    const inNs = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: a}\n';
    assert.equal(prepareDocument(one(inNs), 'a').object.metadata.namespace, 'a');
    assert.throws(
      () => prepareDocument(one(inNs), 'b'),
      /m\.yaml: document 1 \(line 3, column \d+\): metadata\.namespace: namespace "a" does not match -n b/,
    );
  });

  test('the size check encodes the object sent as parseObject would shape it', () => {
    // prepareDocument encodes withLastApplied(object) without reading it through parseObject again.
    for (const text of [
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: {a: b}}\ndata: {k: v, n: "1"}\nbinaryData: {b: AQI=}\n',
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: 2\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n        ports: [{containerPort: 80}]\n        resources: {limits: {cpu: 100m, memory: 64Mi}}\n',
      'apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selector: {a: b}, ports: [{port: 80, targetPort: 8080}]}\n',
    ]) {
      const { object, withLastApplied: sent } = prepareDocument(one(text), undefined);
      assert.deepEqual(sent, withLastApplied(object as unknown as Record<string, unknown>));
      assert.deepEqual(encodeObject(sent as never), encodeObject(parseObject(sent)), text);
    }
  });

  test('an object over the size limit with its last-applied copy is refused; one under it is not', () => {
    const cm = (bytes: number) =>
      `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  big.bin: ${'x'.repeat(bytes)}\n`;
    // Twice (the data and its copy in the annotation) 800 kB is over 1.5 MiB; twice 700 kB is not.
    assert.throws(
      () => prepareDocument(one(cm(800_000)), undefined),
      /m\.yaml: document 1 \(line 5, column 3\): .*over the limit of 1564672.*most of it is data\[big\.bin\].*last-applied-configuration annotation/,
    );
    assert.equal(prepareDocument(one(cm(700_000)), undefined).name, 'big');
  });

  test('encoded objects stay within 8 times their JSON bytes, the bound that lets small ones skip encoding', () => {
    for (const text of [
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {"": "", a: b}\nbinaryData: {"": ""}\n',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {a: ""}}\nspec:\n  securityContext: {supplementalGroups: [-1, -1, -1, -1, -1, -1], runAsUser: -1}\n  containers:\n  - {name: c, image: i, args: ["", "", ""], ports: [{containerPort: 1}, {containerPort: 2}], resources: {limits: {cpu: "1"}}}\n',
      'apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 1, targetPort: 1}, {port: 2, targetPort: b}]}\n',
    ]) {
      const { withLastApplied: sent } = prepareDocument(one(text), undefined);
      const json = Buffer.byteLength(JSON.stringify(sent));
      assert.ok(
        encodeObject(sent as never).length * 2 <= json * 8,
        `${encodeObject(sent as never).length} vs ${json}: ${text}`,
      );
    }
  });

  test('cluster-scoped objects drop a namespace', () => {
    const ns = prepareDocument(
      one('apiVersion: v1\nkind: Namespace\nmetadata: {name: x, namespace: other}\n'),
      'z',
    );
    assert.equal(ns.namespace, '');
    assert.equal(ns.object.metadata.namespace, undefined);
  });

  test('a name is required; field errors carry the location', () => {
    assert.throws(
      () =>
        prepareDocument(one('apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: c-}\n'), undefined),
      /needs a name/,
    );
    assert.throws(
      () =>
        prepareDocument(one('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nbogus: 1\n'), undefined),
      (err: unknown) =>
        err instanceof Error && /^m\.yaml: document 1 \(line 4, column 1\): .*bogus/.test(err.message),
    );
  });
});

describe('loadManifests', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-apply-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('every bad document is reported, and a duplicate object is refused', async () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(
      path,
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nx: 1\n---\napiVersion: v1\nkind: Nope\nmetadata: {name: b}\n',
    );
    await assert.rejects(
      loadManifests([path], undefined),
      /2 invalid documents, nothing was applied:\n.*document 1.*\n.*document 2/,
    );
    const dup = join(dir, 'dup.yaml');
    writeFileSync(
      dup,
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n',
    );
    await assert.rejects(
      loadManifests([dup], undefined),
      /document 2 .*configmap\/a is also defined in .*dup\.yaml document 1/,
    );
  });

  test('namespaces are applied first', async () => {
    const path = join(dir, 'order.yaml');
    writeFileSync(
      path,
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ns1}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ns1}\n',
    );
    const ordered = orderForApply(await loadManifests([path], undefined));
    assert.deepEqual(
      ordered.map((p) => p.info.kind),
      ['Namespace', 'ConfigMap'],
    );
  });
});
