import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../proto/errors.js';
import {
  checkKey,
  comparePaths,
  decodeContinue,
  encodeContinue,
  objectPath,
  parseObjectPath,
  prefixEnd,
  rangePrefix,
} from './keys.js';

describe('store keys', () => {
  test('namespaced and cluster-scoped paths round-trip', () => {
    const pod = { resource: 'pods', namespace: 'web', name: 'api-0' };
    assert.equal(objectPath('/skiff', pod), '/skiff/pods/web/api-0');
    assert.deepEqual(parseObjectPath('/skiff', 'pods', '/skiff/pods/web/api-0'), pod);
    const node = { resource: 'nodes', name: 'n1' };
    assert.equal(objectPath('/skiff', node), '/skiff/nodes/n1');
    assert.deepEqual(parseObjectPath('/skiff', 'nodes', '/skiff/nodes/n1'), node);
    assert.equal(parseObjectPath('/skiff', 'pods', '/skiff/pods/a/b/c'), undefined);
    assert.equal(parseObjectPath('/skiff', 'pods', '/skiff/podsx/a/b'), undefined);
  });

  test('a namespace range never covers a namespace that only shares its first letters', () => {
    const web = rangePrefix('/skiff', 'pods', 'web');
    assert.ok(!'/skiff/pods/web-2/a'.startsWith(web));
    assert.ok(!'/skiff/podtemplates/web/a'.startsWith(rangePrefix('/skiff', 'pods')));
    assert.equal(prefixEnd(Buffer.from(web)).toString(), '/skiff/pods/web0');
    assert.deepEqual(prefixEnd(Buffer.from([0x61, 0xff])), Buffer.from([0x62]));
  });

  test('bad segments are refused naming the field', () => {
    for (const [key, field] of [
      [{ resource: 'pods', namespace: 'a/b', name: 'x' }, 'metadata.namespace'],
      [{ resource: 'pods', name: '' }, 'metadata.name'],
      [{ resource: 'pods', name: '..' }, 'metadata.name'],
      [{ resource: 'po/ds', name: 'x' }, 'resource'],
    ] as const) {
      assert.throws(
        () => checkKey('create pods', key),
        (err: unknown) => err instanceof InvalidArgumentError && err.field === field,
      );
    }
  });

  test('continue tokens round-trip and are refused when forged or from another range', () => {
    const token = encodeContinue(42n, 'web/api-3');
    assert.deepEqual(decodeContinue('list pods', token, 'web'), { revision: 42n, after: 'web/api-3' });
    assert.deepEqual(decodeContinue('list pods', token, undefined).revision, 42n);
    const refused = (t: string, ns?: string): void =>
      assert.throws(
        () => decodeContinue('list pods', t, ns),
        (err: unknown) => err instanceof InvalidArgumentError && err.field === 'continue',
      );
    refused(token, 'other');
    refused('not base64!');
    refused(Buffer.from('{"v":1,"rev":"-1","after":"a"}').toString('base64url'));
    refused(Buffer.from('{"v":1,"rev":"5","after":"../../x/y/z"}').toString('base64url'));
    refused(Buffer.from('[]').toString('base64url'));
  });

  test('comparePaths orders as the UTF-8 bytes do, also for characters past U+FFFF against U+E000 and up', () => {
    const units = [
      'a',
      'z',
      '-',
      '/',
      '0',
      'é',
      '\u{e000}',
      '\u{ffee}',
      '\u{1f600}',
      '\u{10000}',
      '\u{d7ff}',
    ];
    let seed = 11;
    const random = (n: number): number => (seed = (seed * 48271) % 2147483647) % n;
    const word = (): string => Array.from({ length: random(4) }, () => units[random(units.length)]!).join('');
    for (let i = 0; i < 5000; i++) {
      const a = word();
      const b = random(4) === 0 ? a + word() : word();
      assert.equal(
        Math.sign(comparePaths(a, b)),
        Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))),
        `${JSON.stringify(a)} against ${JSON.stringify(b)}`,
      );
    }
  });
});
