/**
 * The pure parts of turning build steps into layers: .dockerignore, the cache key, the upper dir
 * → OCI entries translation, and the tar's order and fixed metadata.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DockerIgnore, globMatcher } from './dockerignore.js';
import { cacheKey, stateId, type BuildState } from './build-cache.js';
import { comparePaths, layerHeaders, type LayerEntry } from './layer-tar.js';
import { upperChange, type UpperStat } from './upper-diff.js';

describe('.dockerignore', () => {
  test('patterns, parents, ** and ! exceptions; the last match decides', () => {
    const ignore = new DockerIgnore(
      [
        '# comment',
        'node_modules',
        '/secret.txt',
        '*.log',
        '!keep.log',
        'docs/**/*.md',
        '!docs/README.md',
        'build/',
        './tmp/../cache',
      ].join('\n'),
    );
    const cases: [string, boolean][] = [
      ['node_modules', true],
      ['node_modules/a/b.js', true],
      ['secret.txt', true],
      ['sub/secret.txt', false],
      ['x.log', true],
      ['keep.log', false],
      ['sub/x.log', false],
      ['docs/a/b/c.md', true],
      ['docs/c.md', true],
      ['docs/README.md', false],
      ['build/out', true],
      ['cache', true],
      ['src/index.ts', false],
    ];
    for (const [path, ignored] of cases) assert.equal(ignore.ignores(path), ignored, path);
  });

  test('globs follow Go filepath.Match: * and ? stop at /, classes, escapes', () => {
    assert.ok(globMatcher('a/*.txt').test('a/b.txt'));
    assert.ok(!globMatcher('a/*.txt').test('a/b/c.txt'));
    assert.ok(globMatcher('file?.[ch]').test('file1.c'));
    assert.ok(!globMatcher('file?.[!ch]').test('file1.c'));
    assert.ok(globMatcher('\\*').test('*'));
    assert.ok(globMatcher('**/x').test('a/b/x'));
    assert.ok(globMatcher('**/x').test('x'));
    assert.ok(!globMatcher('**/x').test('ax'));
    assert.ok(globMatcher('a/**').test('a/b/c'));
  });

  test('a hostile pattern matches in linear time, and names with newlines are matched like others', () => {
    // a backtracking regular expression took seconds for 10 stars and hours for 14: a
    // .dockerignore or COPY glob from a stranger hung the build at 100% CPU
    const started = Date.now();
    assert.ok(!globMatcher(`${'*a'.repeat(40)}b`).test('a'.repeat(4000)));
    assert.ok(!globMatcher(`${'**a'.repeat(40)}b`).test('a/'.repeat(2000)));
    assert.ok(new DockerIgnore(`${'*a'.repeat(40)}b`).ignores('a'.repeat(100)) === false);
    assert.ok(Date.now() - started < 2000, `${Date.now() - started} ms`);
    // '.' of a regular expression stops at a newline: 'dir\nname/secret.key' escaped **/*.key
    const ignore = new DockerIgnore('**/*.key');
    assert.ok(ignore.ignores('dir\nname/secret.key'));
    assert.ok(ignore.ignores('a\nb.key'));
  });
});

describe('build cache key', () => {
  const state: BuildState = {
    os: 'linux',
    architecture: 'amd64',
    layers: [{ digest: 'sha256:aa', diffId: 'sha256:bb', size: 1, mediaType: 'x' }],
    config: { Env: ['A=1'], Cmd: ['sh'] },
    history: [],
  };
  test('the same parent and instruction give the same key, whatever the order of config keys', () => {
    const reordered: BuildState = { ...state, config: { Cmd: ['sh'], Env: ['A=1'] } };
    assert.equal(stateId(state), stateId(reordered));
    assert.equal(cacheKey(state, 'RUN ["a"]', ['x']), cacheKey(reordered, 'RUN ["a"]', ['x']));
  });
  test('a different parent layer, config, instruction or copied content changes it', () => {
    const base = cacheKey(state, 'RUN ["a"]', ['sum1']);
    const otherLayer = { ...state, layers: [{ ...state.layers[0]!, diffId: 'sha256:cc' as const }] };
    assert.notEqual(cacheKey(otherLayer, 'RUN ["a"]', ['sum1']), base);
    assert.notEqual(cacheKey({ ...state, config: { Env: ['A=2'] } }, 'RUN ["a"]', ['sum1']), base);
    assert.notEqual(cacheKey(state, 'RUN ["b"]', ['sum1']), base);
    assert.notEqual(cacheKey(state, 'RUN ["a"]', ['sum2']), base);
  });
  test('a build arg holding a newline does not give the key of two args', () => {
    // --build-arg A=$'1\nB=2' hit the cache entry of A=1 and B=2: a RUN that saw A="1\nB=2"
    // gave its layer to a later build that set both
    assert.notEqual(
      cacheKey(state, 'RUN ["a"]', ['epoch=0', 'A=1\nB=2']),
      cacheKey(state, 'RUN ["a"]', ['epoch=0', 'A=1', 'B=2']),
    );
    assert.notEqual(cacheKey(state, 'RUN ["a"]\nx', []), cacheKey(state, 'RUN ["a"]', ['x']));
  });
});

/** A stat of the given kind, as lstat would give it for an upper-dir entry. */
function stat(
  kind: 'dir' | 'file' | 'symlink' | 'whiteout' | 'chardev' | 'fifo',
  extra: Partial<UpperStat> = {},
): UpperStat {
  return {
    mode: 0o100644,
    uid: 1,
    gid: 2,
    size: 3,
    rdev: kind === 'chardev' ? 0x0501 : 0,
    ino: 1,
    nlink: 1,
    isDirectory: () => kind === 'dir',
    isFile: () => kind === 'file',
    isSymbolicLink: () => kind === 'symlink',
    isFIFO: () => kind === 'fifo',
    isCharacterDevice: () => kind === 'whiteout' || kind === 'chardev',
    ...extra,
  };
}

describe('overlay upper dir → OCI layer', () => {
  const none = { opaque: false };
  test('a char 0/0 device is a whiteout; an opaque directory gets .wh..wh..opq', () => {
    assert.deepEqual(upperChange('etc/gone', stat('whiteout'), none), [
      { path: 'etc/gone', type: 'whiteout' },
    ]);
    assert.deepEqual(upperChange('d', stat('dir', { mode: 0o40755 }), { opaque: true }), [
      { path: 'd', type: 'directory', mode: 0o755, uid: 1, gid: 2 },
      { path: 'd', type: 'opaque' },
    ]);
  });
  test('files keep mode and owner; a second name of an inode is a hard link; devices are left out', () => {
    const [file] = upperChange('f', stat('file', { mode: 0o104755 }), none);
    assert.deepEqual(
      { ...file!, open: undefined },
      { path: 'f', type: 'file', mode: 0o4755, uid: 1, gid: 2, size: 3, open: undefined },
    );
    assert.deepEqual(upperChange('g', stat('file'), { opaque: false, linkedTo: 'f' }), [
      { path: 'g', type: 'link', mode: 0o644, uid: 1, gid: 2, target: 'f' },
    ]);
    assert.deepEqual(upperChange('dev/x', stat('chardev'), none), []);
    assert.deepEqual(
      upperChange('l', stat('symlink', { mode: 0o120777 }), { opaque: false, symlinkTarget: '../t' }),
      [{ path: 'l', type: 'symlink', mode: 0o777, uid: 1, gid: 2, target: '../t' }],
    );
  });
  test('the tar lists a directory before its content, whiteouts by their .wh. names, every mtime the epoch', () => {
    const entries: LayerEntry[] = [
      { path: 'b', type: 'directory', mode: 0o755, uid: 0, gid: 0 },
      { path: 'a-c', type: 'fifo', mode: 0o644, uid: 0, gid: 0 },
      { path: 'a/x', type: 'whiteout' },
      { path: 'a', type: 'opaque' },
      { path: 'a', type: 'directory', mode: 0o700, uid: 5, gid: 6 },
      { path: 'a/b', type: 'symlink', mode: 0o777, uid: 0, gid: 0, target: '/t' },
    ];
    const headers = layerHeaders(entries, 1_700_000_000);
    assert.deepEqual(
      headers.map((h) => h.header.name),
      ['a', 'a/.wh..wh..opq', 'a/.wh.x', 'a/b', 'a-c', 'b'],
    );
    for (const h of headers) {
      assert.equal(h.header.mtime!.getTime(), 1_700_000_000_000);
      assert.equal(h.header.uname, '');
      assert.equal(h.header.gname, '');
    }
    assert.deepEqual(
      [headers[0]!.header.mode, headers[0]!.header.uid, headers[0]!.header.gid],
      [0o700, 5, 6],
    );
    assert.ok(comparePaths('a/b', 'a-c') < 0);
  });
  test('a file, directory or link named .wh.* is refused: in a layer the name means a deletion', () => {
    // a RUN's `echo > /.wh.bin` or a context file of that name deleted /bin from the image
    const owner = { mode: 0o644, uid: 0, gid: 0 };
    const named: LayerEntry[] = [
      { path: '.wh.bin', type: 'file', ...owner, size: 0, open: () => Buffer.alloc(0) },
      { path: 'e/.wh..wh..opq', type: 'file', ...owner, size: 0, open: () => Buffer.alloc(0) },
      { path: 'd/.wh.x', type: 'directory', ...owner },
      { path: '.wh.l', type: 'symlink', ...owner, target: 't' },
    ];
    for (const entry of named)
      assert.throws(() => layerHeaders([entry], 0), /\.wh\..*reserved for deletions/, entry.path);
    assert.doesNotThrow(() =>
      layerHeaders([{ path: 'a/.whx', type: 'file', ...owner, size: 0, open: () => Buffer.alloc(0) }], 0),
    );
  });
});
