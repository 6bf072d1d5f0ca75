import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { kindInfoOf } from '../../proto/kinds.js';
import { serviceExternalIP } from '../../proto/printing/columns.js';
import { customColumnsTable, goValue, parseCustomColumns, parseCustomColumnsFile } from './custom-columns.js';
import { formatValue, parseOutput } from './format.js';
import { naturalCompare, parseSortBy, printGroups, sortObjects } from './printer.js';
import { formatLabels, labelColumnHeader, renderTable, tableFor } from './table.js';
import { formatWritten } from './written.js';

const now = Date.parse('2026-01-01T01:00:00Z');
const created = '2026-01-01T00:59:00Z';
const cm = (name: string, labels: Record<string, string> = {}, data: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'default', creationTimestamp: created, labels },
  data,
});

describe('-o formats', () => {
  test('parseOutput reads every format and refuses the rest naming -o', () => {
    assert.deepEqual(parseOutput(undefined), { type: 'table' });
    assert.equal(parseOutput('wide').type, 'wide');
    assert.equal(parseOutput('jsonpath={.a}').type, 'jsonpath');
    assert.equal(parseOutput('custom-columns=N:.metadata.name').type, 'custom-columns');
    assert.throws(
      () => parseOutput('jsonpath'),
      /-o jsonpath: template format specified but no template given/,
    );
    assert.throws(() => parseOutput('custom-columns='), /no custom columns given/);
    assert.throws(
      () => parseOutput('xml'),
      (e: unknown) =>
        (e as { field?: string }).field === 'output' &&
        /use one of wide, json, yaml, name, jsonpath=TEMPLATE/.test(String(e)),
    );
    assert.throws(
      () => parseOutput('wide', ['json', 'yaml', 'name', 'jsonpath']),
      /use one of json, yaml, name, jsonpath=TEMPLATE, jsonpath-file=FILE$/,
    );
    assert.throws(
      () => parseOutput('jsonpath-file=/nonexistent/x'),
      /-o jsonpath-file=\/nonexistent\/x: ENOENT/,
    );
  });

  test('YAML as kubectl writes it: keys sorted, lists at their key, timestamps and 1.1 words quoted', () => {
    const yaml = formatValue(
      {
        kind: 'Namespace',
        apiVersion: 'v1',
        metadata: { name: 'n', creationTimestamp: '2026-01-01T00:00:00Z', labels: { on: 'yes' } },
        spec: { finalizers: ['kubernetes'] },
      },
      'yaml',
    );
    assert.equal(
      yaml,
      'apiVersion: v1\nkind: Namespace\nmetadata:\n  creationTimestamp: "2026-01-01T00:00:00Z"\n  labels:\n    "on": "yes"\n  name: "n"\nspec:\n  finalizers:\n  - kubernetes\n',
    );
    assert.equal(formatValue({ a: 1 }, 'json'), '{\n    "a": 1\n}\n');
  });
});

describe('tables', () => {
  test('--show-labels and -L columns, as kubectl heads and fills them', () => {
    const objects = [cm('a', { 'app.kubernetes.io/name': 'web', tier: 'fe' }), cm('b')];
    const { headers, rows } = tableFor(
      'ConfigMap',
      objects,
      {
        wide: false,
        withNamespace: false,
        labelColumns: ['app.kubernetes.io/name', 'tier'],
        showLabels: true,
      },
      now,
    );
    assert.deepEqual(headers, ['NAME', 'DATA', 'AGE', 'NAME', 'TIER', 'LABELS']);
    assert.deepEqual(rows, [
      ['a', '0', '60s', 'web', 'fe', 'app.kubernetes.io/name=web,tier=fe'],
      ['b', '0', '60s', '', '', '<none>'],
    ]);
    assert.equal(labelColumnHeader('tier'), 'TIER');
    assert.equal(formatLabels({ z: '1', a: '2' }), 'a=2,z=1');
  });

  test('cells are at least six wide, as kubectl’s tabwriter makes them', () => {
    assert.equal(renderTable(['A', 'B'], [['x', 'y']]), 'A     B\nx     y\n');
  });

  test('services: LoadBalancer <pending>, its addresses, ExternalName’s name', () => {
    const svc = (spec: Record<string, unknown>, status: Record<string, unknown> = {}) => ({
      kind: 'Service',
      metadata: { name: 's', creationTimestamp: created },
      spec,
      status,
    });
    const row = (s: Record<string, unknown>) =>
      tableFor('Service', [s], { wide: false, withNamespace: false }, now).rows[0];
    assert.deepEqual(
      row(svc({ type: 'LoadBalancer', clusterIP: '10.0.0.9', ports: [{ port: 80, nodePort: 30080 }] })),
      ['s', 'LoadBalancer', '10.0.0.9', '<pending>', '80:30080/TCP', '60s'],
    );
    assert.deepEqual(row(svc({ type: 'ExternalName', externalName: 'db.example.com' })), [
      's',
      'ExternalName',
      '<none>',
      'db.example.com',
      '<none>',
      '60s',
    ]);
    const balanced = svc(
      { type: 'LoadBalancer', externalIPs: ['1.2.3.4'] },
      { loadBalancer: { ingress: [{ ip: '203.0.113.10' }, { hostname: 'lb.example.com' }] } },
    );
    assert.equal(serviceExternalIP(balanced, true), '203.0.113.10,lb.example.com,1.2.3.4');
    assert.equal(serviceExternalIP(balanced, false), '203.0.113.10,...,1.2.3.4');
    assert.equal(serviceExternalIP(svc({ type: 'NodePort' })), '<none>');
    assert.equal(serviceExternalIP(svc({ externalIPs: ['5.6.7.8'] })), '5.6.7.8');
  });
});

describe('custom-columns', () => {
  test('cells join every value, print as Go %v, and say <none> when there is none', () => {
    const columns = parseCustomColumns(
      'NAME:.metadata.name,DATA:.data,KEYS:{.data.*},PORTS:.spec.ports[0,1],NONE:.spec.x',
    );
    const obj = { metadata: { name: 'x' }, data: { b: '2', a: '1' }, spec: { ports: [80, 443] } };
    assert.deepEqual(customColumnsTable(columns, [obj]), {
      headers: ['NAME', 'DATA', 'KEYS', 'PORTS', 'NONE'],
      rows: [['x', 'map[a:1 b:2]', '2,1', '80,443', '<none>']],
    });
    assert.equal(goValue([1, 'a', { k: null }]), '[1 a map[k:<nil>]]');
    assert.throws(
      () => parseCustomColumns('NAME'),
      /unexpected custom-columns spec: NAME, expected <header>:<json-path-expr>/,
    );
    assert.deepEqual(
      parseCustomColumnsFile('NAME   DATA\n.metadata.name {.data}\n', 'f').map((c) => c.header),
      ['NAME', 'DATA'],
    );
  });
});

describe('--sort-by', () => {
  test('natural order for strings, numbers by value, objects without the field first', () => {
    const objects = [cm('web-10'), cm('web-2'), cm('web-1')];
    assert.deepEqual(
      sortObjects(objects, parseSortBy('.metadata.name'), '.metadata.name').map(
        (o) => (o.metadata as { name: string }).name,
      ),
      ['web-1', 'web-2', 'web-10'],
    );
    const numbers = [{ v: 10 }, {}, { v: 9 }];
    assert.deepEqual(sortObjects(numbers, parseSortBy('{.v}'), '{.v}'), [{}, { v: 9 }, { v: 10 }]);
    assert.throws(
      () => sortObjects(objects, parseSortBy('.nope'), '.nope'),
      /couldn't find any field with path ".nope"/,
    );
    assert.ok(naturalCompare('a2', 'a10') < 0 && naturalCompare('b', 'a10') > 0);
  });
});

describe('printGroups', () => {
  const group = { info: kindInfoOf('ConfigMap'), objects: [cm('a', {}, { k: 'v' })] };
  test('one named object prints bare, several as a v1 List; jsonpath sees the same', () => {
    assert.match(
      printGroups([group], { output: { type: 'json' }, single: true }),
      /^\{\n {4}"apiVersion": "v1",\n {4}"kind": "ConfigMap"/,
    );
    assert.match(
      printGroups([group], { output: { type: 'yaml' }, single: false }),
      /^apiVersion: v1\nitems:\n- apiVersion: v1\n/,
    );
    assert.equal(printGroups([group], { output: parseOutput('jsonpath={.data.k}'), single: true }), 'v');
    assert.equal(
      printGroups([group], { output: parseOutput('jsonpath={.items[*].metadata.name}'), single: false }),
      'a',
    );
    assert.equal(printGroups([group], { output: { type: 'name' }, single: false }), 'configmap/a\n');
  });
  test('what writing verbs print', () => {
    const written = [{ info: kindInfoOf('Deployment'), name: 'web', action: 'created', object: {} }];
    assert.equal(formatWritten(written, undefined, ' (dry run)'), 'deployment.apps/web created (dry run)\n');
    assert.equal(formatWritten([...written, ...written], { type: 'yaml' }, ''), '{}\n---\n{}\n');
  });
});
