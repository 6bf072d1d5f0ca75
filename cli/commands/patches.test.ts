import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../proto/errors.js';
import {
  applyJsonPatch,
  applyPatch,
  mergePatch,
  parseJsonPatch,
  strategicMergePatch,
  type Json,
} from './patches.js';

describe('JSON merge patch (RFC 7386)', () => {
  test('the RFC’s examples (appendix A)', () => {
    const cases: [Json, Json, Json][] = [
      [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
      [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
      [{ a: 'b' }, { a: null }, {}],
      [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
      [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
      [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
      [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
      [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
      [
        ['a', 'b'],
        ['c', 'd'],
        ['c', 'd'],
      ],
      [{ a: 'b' }, ['c'], ['c']],
      [{ a: 'foo' }, null, null],
      [{ a: 'foo' }, 'bar', 'bar'],
      [{ e: null }, { a: 1 }, { e: null, a: 1 }],
      [[1, 2], { a: 'b', c: null }, { a: 'b' }],
      [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
    ];
    for (const [target, patch, want] of cases) {
      const before = structuredClone(target);
      assert.deepEqual(mergePatch(target, patch), want, JSON.stringify(patch));
      assert.deepEqual(target, before, 'the target is not modified');
    }
  });
});

describe('JSON patch (RFC 6902)', () => {
  test('the RFC’s examples (appendix A)', () => {
    const ok: [Json, Json, Json][] = [
      [{ foo: 'bar' }, [{ op: 'add', path: '/baz', value: 'qux' }], { baz: 'qux', foo: 'bar' }],
      [
        { foo: ['bar', 'baz'] },
        [{ op: 'add', path: '/foo/1', value: 'qux' }],
        { foo: ['bar', 'qux', 'baz'] },
      ],
      [{ baz: 'qux', foo: 'bar' }, [{ op: 'remove', path: '/baz' }], { foo: 'bar' }],
      [{ foo: ['bar', 'qux', 'baz'] }, [{ op: 'remove', path: '/foo/1' }], { foo: ['bar', 'baz'] }],
      [
        { baz: 'qux', foo: 'bar' },
        [{ op: 'replace', path: '/baz', value: 'boo' }],
        { baz: 'boo', foo: 'bar' },
      ],
      [
        { foo: { bar: 'baz', waldo: 'fred' }, qux: { corge: 'grault' } },
        [{ op: 'move', from: '/foo/waldo', path: '/qux/thud' }],
        { foo: { bar: 'baz' }, qux: { corge: 'grault', thud: 'fred' } },
      ],
      [
        { foo: ['all', 'grass', 'cows', 'eat'] },
        [{ op: 'move', from: '/foo/1', path: '/foo/3' }],
        { foo: ['all', 'cows', 'eat', 'grass'] },
      ],
      [
        { foo: 'bar' },
        [{ op: 'add', path: '/child', value: { grandchild: {} } }],
        { foo: 'bar', child: { grandchild: {} } },
      ],
      [
        { foo: ['bar'] },
        [{ op: 'add', path: '/foo/-', value: ['abc', 'def'] }],
        { foo: ['bar', ['abc', 'def']] },
      ],
      [{ '/': 9, '~1': 10 }, [{ op: 'test', path: '/~01', value: 10 }], { '/': 9, '~1': 10 }],
      [{ a: { b: 1 } }, [{ op: 'copy', from: '/a', path: '/c' }], { a: { b: 1 }, c: { b: 1 } }],
      [
        { baz: 'qux', foo: ['a', 2, 'c'] },
        [{ op: 'test', path: '/foo', value: ['a', 2, 'c'] }],
        { baz: 'qux', foo: ['a', 2, 'c'] },
      ],
    ];
    for (const [target, patch, want] of ok)
      assert.deepEqual(applyJsonPatch(target, parseJsonPatch(patch)), want, JSON.stringify(patch));
    const refused: [Json, Json, RegExp][] = [
      [{ foo: 'bar' }, [{ op: 'add', path: '/baz/bat', value: 'qux' }], /path does not exist/],
      [{ baz: 'qux' }, [{ op: 'test', path: '/baz', value: 'bar' }], /test failed/],
      [{ foo: ['bar', 'baz'] }, [{ op: 'add', path: '/foo/3', value: 'x' }], /out of range/],
      [{ a: 1 }, [{ op: 'remove', path: '/b' }], /does not exist/],
      [{ a: 1 }, [{ op: 'frob', path: '/a' }], /op "frob" is not one of/],
      [{ a: 1 }, [{ op: 'add', path: 'a', value: 1 }], /must start with \//],
      [{ a: 1 }, { op: 'add' }, /must be a list of operations/],
    ];
    for (const [target, patch, reason] of refused)
      assert.throws(
        () => applyJsonPatch(target, parseJsonPatch(patch)),
        (e: unknown) => e instanceof InvalidArgumentError && reason.test(e.message),
        JSON.stringify(patch),
      );
  });
});

describe('strategic merge patch', () => {
  const deployment: Json = {
    metadata: { name: 'web', labels: { app: 'web' }, finalizers: ['a'] },
    spec: {
      replicas: 1,
      template: {
        spec: {
          containers: [
            { name: 'web', image: 'nginx:1', ports: [{ containerPort: 80 }], args: ['-x'] },
            { name: 'side', image: 'busybox' },
          ],
          volumes: [{ name: 'v', emptyDir: {} }],
        },
      },
    },
  };

  test('lists of named things merge on their keys; other lists are replaced', () => {
    const patched = strategicMergePatch(deployment, {
      metadata: { finalizers: ['b', 'a'] },
      spec: {
        template: {
          spec: {
            containers: [
              { name: 'web', image: 'nginx:2', args: ['-y'], ports: [{ containerPort: 443 }] },
              { name: 'new', image: 'x' },
            ],
          },
        },
      },
    }) as {
      metadata: { finalizers: string[] };
      spec: { template: { spec: { containers: Json[]; volumes: Json[] } } };
    };
    assert.deepEqual(patched.metadata.finalizers, ['a', 'b']);
    assert.deepEqual(patched.spec.template.spec.containers, [
      { name: 'web', image: 'nginx:2', ports: [{ containerPort: 80 }, { containerPort: 443 }], args: ['-y'] },
      { name: 'side', image: 'busybox' },
      { name: 'new', image: 'x' },
    ]);
    assert.deepEqual(patched.spec.template.spec.volumes, [{ name: 'v', emptyDir: {} }]);
  });

  test('$patch: delete and replace; null removes; unknown directives are refused', () => {
    const deleted = strategicMergePatch(deployment, {
      spec: { template: { spec: { containers: [{ name: 'side', $patch: 'delete' }] } } },
    }) as { spec: { template: { spec: { containers: { name: string }[] } } } };
    assert.deepEqual(
      deleted.spec.template.spec.containers.map((c) => c.name),
      ['web'],
    );
    const replaced = strategicMergePatch(deployment, {
      metadata: { labels: { $patch: 'replace', tier: 'fe' } },
    }) as {
      metadata: { labels: Json };
    };
    assert.deepEqual(replaced.metadata.labels, { tier: 'fe' });
    const wholeList = strategicMergePatch(deployment, {
      spec: { template: { spec: { volumes: [{ $patch: 'replace' }, { name: 'w', emptyDir: {} }] } } },
    }) as { spec: { template: { spec: { volumes: Json } } } };
    assert.deepEqual(wholeList.spec.template.spec.volumes, [{ name: 'w', emptyDir: {} }]);
    assert.equal(
      (strategicMergePatch(deployment, { spec: { replicas: null } }) as { spec: Record<string, Json> }).spec
        .replicas,
      undefined,
    );
    assert.throws(
      () => strategicMergePatch(deployment, { spec: { $retainKeys: ['replicas'] } }),
      /spec: the directive "\$retainKeys" is not supported; use --type merge or --type json/,
    );
    assert.throws(
      () =>
        strategicMergePatch(deployment, { spec: { template: { spec: { containers: [{ image: 'x' }] } } } }),
      /needs its merge key "name"/,
    );
  });

  test('applyPatch dispatches and refuses the wrong shape', () => {
    assert.deepEqual(applyPatch('merge', { a: 1 }, { b: 2 }), { a: 1, b: 2 });
    assert.throws(() => applyPatch('merge', { a: 1 }, [1]), /--type merge: the patch must be a mapping/);
    assert.throws(
      () => applyPatch('strategic', { a: 1 }, 'x'),
      /--type strategic: the patch must be a mapping/,
    );
  });
});
