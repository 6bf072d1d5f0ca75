import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../proto/errors.js';
import { parseDuration } from './context.js';
import { editBuffer, editorCommand, stripComments } from './edit.js';
import { changeMetadata, labelVerdict, splitArguments } from './label.js';
import { parseResourceArgs } from './resource-args.js';

describe('KIND NAME and KIND/NAME arguments', () => {
  const shape = (args: string[]) =>
    parseResourceArgs(args, 'get').groups.map((g) => [g.info.kind, g.names] as const);
  test('as kubectl reads them', () => {
    assert.deepEqual(shape(['deploy', 'a', 'b']), [['Deployment', ['a', 'b']]]);
    assert.deepEqual(shape(['deploy,cm']), [
      ['Deployment', []],
      ['ConfigMap', []],
    ]);
    assert.deepEqual(shape(['deploy,cm', 'x']), [
      ['Deployment', ['x']],
      ['ConfigMap', ['x']],
    ]);
    assert.deepEqual(shape(['deploy/web', 'cm/cfg', 'deployments.apps/api']), [
      ['Deployment', ['web', 'api']],
      ['ConfigMap', ['cfg']],
    ]);
    assert.equal(parseResourceArgs(['deploy/web'], 'get').named, true);
    assert.equal(parseResourceArgs(['deploy'], 'get').named, false);
  });
  test('mixed or malformed forms are refused, naming the argument', () => {
    for (const [args, reason] of [
      [['deploy', 'cm/x'], /get deploy cm\/x: there is no need to give a kind as a separate argument/],
      [
        ['deploy/web', 'cfg'],
        /get cfg: arguments in resource\/name form must have a single resource and name/,
      ],
      [['deploy/'], /must have a single resource and name/],
      [['gizmo/x'], /doesn't have a resource type "gizmo"/],
      [['deploy,'], /empty kind in the list/],
    ] as const)
      assert.throws(
        () => parseResourceArgs([...args], 'get'),
        (e: unknown) => e instanceof InvalidArgumentError && reason.test(e.message),
      );
  });
});

test('--request-timeout takes Go durations, and bare milliseconds as before', () => {
  assert.equal(parseDuration('1s', '--request-timeout'), 1000);
  assert.equal(parseDuration('500ms', '--request-timeout'), 500);
  assert.equal(parseDuration('1m30s', '--request-timeout'), 90_000);
  assert.equal(parseDuration('1.5h', '--request-timeout'), 5_400_000);
  assert.equal(parseDuration('2500', '--request-timeout'), 2500);
  assert.equal(parseDuration('0', '--request-timeout'), 0);
  for (const bad of ['', '1x', 's', '1 s', '-1s', '1s2'])
    assert.throws(
      () => parseDuration(bad, '--request-timeout'),
      (e: unknown) =>
        e instanceof InvalidArgumentError &&
        e.field === 'request-timeout' &&
        /--request-timeout must be a duration/.test(e.message),
      bad,
    );
});

describe('label and annotate', () => {
  test('arguments split into objects and changes', () => {
    assert.deepEqual(splitArguments(['deploy', 'web', 'a=1', 'b-'], 'labels'), {
      resources: ['deploy', 'web'],
      changes: { set: [['a', '1']], remove: ['b'] },
    });
    assert.deepEqual(splitArguments(['deploy/web', 'note=hello world'], 'annotations').changes.set, [
      ['note', 'hello world'],
    ]);
    assert.throws(
      () => splitArguments(['deploy', 'web', 'bad key=1'], 'labels'),
      /invalid label key "bad key"/,
    );
    assert.throws(
      () => splitArguments(['deploy', 'web', 'a=not ok'], 'labels'),
      /invalid label value "not ok" for a/,
    );
    assert.throws(() => splitArguments(['a=1', 'deploy', 'web'], 'labels'), /objects come before the labels/);
  });
  test('an existing value stays unless --overwrite; the verdict is kubectl’s', () => {
    const obj = { metadata: { labels: { a: '1' } } };
    const warnings: string[] = [];
    assert.throws(
      () => changeMetadata(obj, 'labels', { set: [['a', '2']], remove: [] }, false, () => {}),
      /'a' already has a value \(1\), and --overwrite is false/,
    );
    assert.deepEqual(
      changeMetadata(obj, 'labels', { set: [['a', '2']], remove: [] }, true, () => {}).metadata,
      { labels: { a: '2' } },
    );
    changeMetadata(obj, 'labels', { set: [], remove: ['zz'] }, false, (w) => warnings.push(w));
    assert.deepEqual(warnings, ['label "zz" not found.']);
    assert.equal(labelVerdict({ a: '1' }, { a: '1', b: '2' }), 'labeled');
    assert.equal(labelVerdict({ a: '1' }, {}), 'unlabeled');
    assert.equal(labelVerdict({ a: '1' }, { a: '1' }), 'not labeled');
  });
});

describe('edit', () => {
  test('the editor: SKIFF_EDITOR, KUBE_EDITOR, EDITOR, vi', () => {
    assert.equal(editorCommand({ SKIFF_EDITOR: 'a', KUBE_EDITOR: 'b', EDITOR: 'c' }), 'a');
    assert.equal(editorCommand({ KUBE_EDITOR: 'b', EDITOR: 'c' }), 'b');
    assert.equal(editorCommand({ EDITOR: 'c' }), 'c');
    assert.equal(editorCommand({}), 'vi');
  });
  test('errors go on top as comments, and comments are stripped again', () => {
    const buffer = editBuffer('kind: X\ndata:\n  script: |\n    # kept: not in the first column\n', [
      'configmaps "x" was not valid:\n* data: bad',
    ]);
    assert.match(buffer, /^# Please edit the object below\./);
    assert.match(buffer, /\n# configmaps "x" was not valid:\n# \* data: bad\n#\nkind: X\n/);
    assert.equal(stripComments(buffer), 'kind: X\ndata:\n  script: |\n    # kept: not in the first column\n');
  });
});
