import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  JsonPathError,
  JsonPathExecutionError,
  executeJsonPath,
  goNumber,
  parseJsonPathTemplate,
} from './jsonpath.js';

/** What `kubectl config view -o json` printed for the scratch kubeconfig the expectations come from. */
const config = {
  kind: 'Config',
  apiVersion: 'v1',
  preferences: {},
  clusters: [{ name: 'c1', cluster: { server: 'https://127.0.0.1:7440' } }],
  users: [{ name: 'u1', user: { token: 'REDACTED' } }],
  contexts: [
    { name: 'ctx2', context: { cluster: 'c1', user: 'u1', namespace: 'web' } },
    { name: 'ctx3', context: { cluster: 'c1', user: 'u1', namespace: 'a.b' } },
  ],
  'current-context': 'ctx1',
};

const run = (template: string, data: unknown = config): string =>
  executeJsonPath(parseJsonPathTemplate(template), data);

describe('jsonpath, as kubectl 1.32 prints it (expectations from `kubectl config view -o jsonpath=…`)', () => {
  test('fields, indexes, slices, wildcards, unions', () => {
    const cases: [string, string][] = [
      ['{.contexts[*].name}', 'ctx2 ctx3'],
      ['{.contexts[-1].name}', 'ctx3'],
      ['{.contexts[0:1].name}', 'ctx2'],
      ['{.contexts[1:].name}', 'ctx3'],
      ['{.contexts[:1].name}', 'ctx2'],
      ['{.contexts[-2:].name}', 'ctx2 ctx3'],
      ['{.contexts[0:2:2].name}', 'ctx2'],
      ['{.contexts[0,1].name}', 'ctx2 ctx3'],
      ["{.contexts[0]['name']}", 'ctx2'],
      ["{.contexts[0]['name','context']}", 'ctx2 {"cluster":"c1","namespace":"web","user":"u1"}'],
      ['{.clusters[*].cluster.server}', 'https://127.0.0.1:7440'],
      ['{.contexts[*].context.user}', 'u1 u1'],
      ['{.contexts[*].context.namespace}', 'web a.b'],
      ['{@.kind}', 'Config'],
      ['{$.kind}', 'Config'],
      ['{ .kind }', 'Config'],
      ['x={.kind} y', 'x=Config y'],
      ['a}b', 'a}b'],
    ];
    for (const [template, want] of cases) assert.equal(run(template), want, template);
  });

  test('lists and mappings print as compact JSON with sorted keys', () => {
    assert.equal(run('{.users[0]}'), '{"name":"u1","user":{"token":"REDACTED"}}');
    assert.equal(
      run('{.contexts[0]}'),
      '{"context":{"cluster":"c1","namespace":"web","user":"u1"},"name":"ctx2"}',
    );
    assert.equal(run('{.preferences}'), '{}');
    assert.equal(
      run('{.contexts[*].context}'),
      '{"cluster":"c1","namespace":"web","user":"u1"} {"cluster":"c1","namespace":"a.b","user":"u1"}',
    );
  });

  test('filters', () => {
    assert.equal(run('{.contexts[?(@.name=="ctx3")].context.namespace}'), 'a.b');
    assert.equal(run("{.contexts[?(@.name=='ctx3')].name}"), 'ctx3');
    assert.equal(run('{.contexts[?(@.name!="ctx2")].name}'), 'ctx3');
    assert.equal(run('{.contexts[?(@.name>"ctx2")].name}'), 'ctx3');
    assert.equal(run('{.contexts[?(@.context.namespace)].name}'), 'ctx2 ctx3');
    assert.equal(run('{.contexts[?(@.context.namespace=="a.b")].name}'), 'ctx3');
    const pods = {
      items: [
        { n: 'a', port: 80 },
        { n: 'b', port: 8080 },
        { n: 'c', ready: true },
      ],
    };
    assert.equal(run('{.items[?(@.port==80)].n}', pods), 'a');
    assert.equal(run('{.items[?(@.port>=443)].n}', pods), 'b');
    assert.equal(run('{.items[?(@.ready==true)].n}', pods), 'c');
  });

  test('range, literals and recursive descent', () => {
    assert.equal(
      run('{range .contexts[*]}{.name}{"\\t"}{.context.cluster}{"\\n"}{end}'),
      'ctx2\tc1\nctx3\tc1\n',
    );
    assert.equal(run('{range .contexts[*]}[{.name}]{end}'), '[ctx2][ctx3]');
    assert.equal(run('{range .contexts[*]}{range .context}{.cluster}{end}{end}'), 'c1c1');
    // `{range .contexts}` runs once, over the one list
    assert.equal(run('{range .contexts}{.name};{end}'), ';');
    assert.equal(run('{range .contexts[*].context}{.cluster};{end}'), 'c1;c1;');
    assert.equal(run('{"a\\"b"}'), 'a"b');
    assert.equal(run('{.contexts[*].name}{.contexts[0].name}'), 'ctx2 ctx3ctx2');
    assert.equal(run('{..namespace}'), 'web a.b');
    assert.equal(run('{..name}'), 'c1 u1 ctx2 ctx3');
  });

  test('missing fields print nothing; scalars print as Go does', () => {
    assert.equal(run('{.nope}'), '');
    assert.equal(run('{.kind.foo}'), '');
    assert.equal(run('{.contexts.name}'), '');
    assert.equal(run('{.}'), '');
    const obj = { n: null, i: 1000000, f: 0.5, big: 1e21, tiny: 0.00001, t: true };
    assert.equal(run('{.n}|{.i}|{.f}|{.big}|{.tiny}|{.t}', obj), 'null|1000000|0.5|1e+21|1e-05|true');
    assert.equal(goNumber(-2.5e-7), '-2.5e-07');
  });

  test('errors say what is wrong with the template', () => {
    for (const [template, reason] of [
      ['{.contexts[0].context.cluster', /unclosed action/],
      ['{.contexts[x]}', /invalid array index x/],
      ['{kind}', /unrecognized identifier kind/],
      ['{.kind,.apiVersion}', /unrecognized character/],
      ['{end}', /not in range, nothing to end/],
      ['{.a[?(@.x=="y"]}', /unclosed filter|expect/],
      ['{"abc}', /unclosed action|unterminated/],
    ] as const) {
      assert.throws(
        () => parseJsonPathTemplate(template),
        (e: unknown) =>
          e instanceof JsonPathError &&
          e.field === 'output' &&
          reason.test(e.message) &&
          e.message.includes(template),
        template,
      );
    }
    assert.throws(
      () => run('{.contexts[5].name}'),
      (e: unknown) =>
        e instanceof JsonPathExecutionError &&
        /error executing jsonpath "\{\.contexts\[5\]\.name\}": array index out of bounds: index 5, length 2/.test(
          e.message,
        ),
    );
    assert.throws(() => run('{.contexts[::-1].name}'), /step must be > 0/);
  });

  test('escaped dots and label keys with slashes', () => {
    const obj = { metadata: { labels: { 'app.kubernetes.io/name': 'web', 'a.b': 'c' } } };
    assert.equal(run('{.metadata.labels.app\\.kubernetes\\.io/name}', obj), 'web');
    assert.equal(run("{.metadata.labels['a.b']}", obj), 'c');
  });
});
