import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { changesSinceRelist } from './get.js';

const cm = (name: string, resourceVersion: string, namespace = 'default'): ObjectJson => ({
  kind: 'ConfigMap',
  metadata: { name, namespace, resourceVersion },
});
const names = (objects: ObjectJson[]): string[] =>
  objects.map((obj) => {
    const metadata = obj.metadata as { namespace: string; name: string; resourceVersion: string };
    return `${metadata.namespace}/${metadata.name}@${metadata.resourceVersion}`;
  });

describe('get -w re-list after a compacted watch', () => {
  test('prints what is new or changed, then what is gone (as last seen), and nothing unchanged', () => {
    const known = new Map<string, ObjectJson>();
    assert.deepEqual(
      names(changesSinceRelist(known, [cm('a', '1'), cm('b', '2'), cm('c', '3'), cm('a', '4', 'other')])),
      ['default/a@1', 'default/b@2', 'default/c@3', 'other/a@4'],
    );
    const changed = changesSinceRelist(known, [
      cm('a', '9'),
      cm('c', '3'),
      cm('d', '10'),
      cm('a', '4', 'other'),
    ]);
    assert.deepEqual(names(changed), ['default/a@9', 'default/d@10', 'default/b@2']);
    assert.deepEqual([...known.keys()], ['default/a', 'default/c', 'default/d', 'other/a']);
    assert.deepEqual(
      changesSinceRelist(known, [cm('a', '9'), cm('c', '3'), cm('d', '10'), cm('a', '4', 'other')]),
      [],
    );
  });
});
