import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../proto/errors.js';
import type { KubeObject } from '../../proto/gen/types.js';
import {
  EVERYTHING,
  labelSelectorFromObject,
  parseFieldSelector,
  parseLabelSelector,
  selectorMatchesLabels,
} from './selectors.js';
import { strategyOf } from './kinds/index.js';

describe('label selector text', () => {
  const labels = { app: 'web', tier: 'front', env: 'prod', 'example.com/team': 'a' };
  // selector, matches `labels`
  const table: [string, boolean][] = [
    ['', true],
    ['app=web', true],
    ['app==web', true],
    ['app = web', true],
    ['app=db', false],
    ['app!=db', true],
    ['app!=web', false],
    ['missing!=x', true],
    ['env in (prod,staging)', true],
    ['env in (dev)', false],
    ['env notin (dev, staging)', true],
    ['env notin (prod)', false],
    ['missing notin (prod)', true],
    ['missing in (prod)', false],
    ['app', true],
    ['missing', false],
    ['!missing', true],
    ['!app', false],
    ['example.com/team=a', true],
    ['app=web,tier!=db,env in (prod,staging),env notin (dev),app,!legacy', true],
    ['app=web,!tier', false],
    ['app=', false],
    ['empty=', false],
  ];
  for (const [text, expected] of table) {
    test(`${JSON.stringify(text)} → ${expected}`, () => {
      const selector = parseLabelSelector(text);
      assert.equal(selector.matches(labels), expected);
      assert.equal(
        parseLabelSelector(selector.toString()).toString(),
        selector.toString(),
        'toString round trips',
      );
    });
  }

  test('"key=" selects the empty value', () => {
    assert.equal(parseLabelSelector('a=').matches({ a: '' }), true);
    assert.equal(parseLabelSelector('a=,b=c').matches({ a: '', b: 'c' }), true);
  });

  test('an empty selector selects objects without labels; others do not', () => {
    assert.equal(parseLabelSelector('').empty, true);
    assert.equal(parseLabelSelector('').matches(undefined), true);
    assert.equal(parseLabelSelector('a').matches(undefined), false);
    assert.equal(parseLabelSelector('!a').matches(undefined), true);
  });

  test('toString is canonical', () => {
    assert.equal(
      parseLabelSelector(' app == web , env in ( a , b ),!x').toString(),
      'app=web,env in (a,b),!x',
    );
  });

  const bad: [string, string, RegExp][] = [
    ['app=web,=x', '=x', /expected a label key/],
    ['app in prod', 'app in prod', /expected "\(" after "in"/],
    ['app in (a,b', 'app in (a,b', /missing "\)"|expected "," or "\)"/],
    ['app in ()', 'app in ()', /needs at least one value/],
    ['app=web tier=db', 'app=web tier=db', /expected ','/],
    ['app=a b', 'app=a b', /expected ','/],
    ['-bad=x', '-bad=x', /key "-bad" name part must consist/],
    ['app=has space!', 'app=has space!', /expected ','/],
    ['app=-x', 'app=-x', /value "-x" must be empty or consist/],
    ['app>3', 'app>3', /key "app>3"/],
    ['a,,b', '', /expected a label key/],
    ['app foo', 'app foo', /expected one of =, ==, !=, in, notin after key "app"/],
  ];
  for (const [text, term, message] of bad) {
    test(`${JSON.stringify(text)} is rejected naming the term`, () => {
      assert.throws(
        () => parseLabelSelector(text),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === 'labelSelector' &&
          err.message.includes(`term ${JSON.stringify(term)}`) &&
          message.test(err.message),
      );
    });
  }
});

describe('LabelSelector objects', () => {
  test('matchLabels and matchExpressions all have to hold', () => {
    const selector = labelSelectorFromObject({
      matchLabels: { app: 'web' },
      matchExpressions: [
        { key: 'env', operator: 'In', values: ['prod', 'staging'] },
        { key: 'legacy', operator: 'DoesNotExist' },
      ],
    });
    assert.equal(selector.toString(), 'app=web,env in (prod,staging),!legacy');
    assert.equal(selector.matches({ app: 'web', env: 'prod' }), true);
    assert.equal(selector.matches({ app: 'web', env: 'prod', legacy: 'y' }), false);
    assert.equal(selector.matches({ app: 'web', env: 'dev' }), false);
  });

  test('an empty object selects everything, an absent one nothing', () => {
    assert.equal(selectorMatchesLabels({}, { a: 'b' }), true);
    assert.equal(selectorMatchesLabels(undefined, { a: 'b' }), false);
    assert.equal(EVERYTHING.matches(undefined), true);
  });

  const bad: [Parameters<typeof labelSelectorFromObject>[0], string, RegExp][] = [
    [{ matchLabels: { 'bad key!': 'x' } }, 'spec.selector.matchLabels[bad key!]', /key name part/],
    [{ matchLabels: { app: 'bad value!' } }, 'spec.selector.matchLabels[app]', /value "bad value!"/],
    [
      { matchExpressions: [{ key: 'a', operator: 'Equals', values: ['x'] }] },
      'spec.selector.matchExpressions[0].operator',
      /not one of In, NotIn, Exists, DoesNotExist/,
    ],
    [
      { matchExpressions: [{ key: 'a', operator: 'In' }] },
      'spec.selector.matchExpressions[0].values',
      /non-empty/,
    ],
    [
      { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] },
      'spec.selector.matchExpressions[0].values',
      /must be empty/,
    ],
    [
      { matchExpressions: [{ key: '', operator: 'Exists' }] },
      'spec.selector.matchExpressions[0].key',
      /must not be empty/,
    ],
    [
      { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['ok', '%'] }] },
      'spec.selector.matchExpressions[0].values[1]',
      /"%"/,
    ],
  ];
  for (const [selector, field, message] of bad) {
    test(`rejects ${JSON.stringify(selector)} at ${field}`, () => {
      assert.throws(
        () => labelSelectorFromObject(selector, 'spec.selector'),
        (err: unknown) =>
          err instanceof InvalidArgumentError && err.field === field && message.test(err.message),
      );
    });
  }
});

describe('field selectors', () => {
  const pod = (
    name: string,
    namespace: string,
    nodeName: string | undefined,
    phase: string | undefined,
  ): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace },
    spec: { ...(nodeName === undefined ? {} : { nodeName }), containers: [{ name: 'c', image: 'i' }] },
    ...(phase === undefined ? {} : { status: { phase } }),
  });
  const running = pod('a', 'default', 'n1', 'Running');
  const pending = pod('b', 'shop', undefined, undefined);
  const table: [string, boolean, boolean][] = [
    ['', true, true],
    ['metadata.name=a', true, false],
    ['metadata.name==a', true, false],
    ['metadata.name!=a', false, true],
    ['metadata.namespace=shop', false, true],
    ['spec.nodeName=n1', true, false],
    ['spec.nodeName=', false, true],
    ['spec.nodeName!=', true, false],
    ['status.phase!=Running', false, true],
    ['status.phase=Running,spec.nodeName=n1', true, false],
    [' metadata.name = a ', true, false],
  ];
  for (const [text, matchesRunning, matchesPending] of table) {
    test(`${JSON.stringify(text)} → ${matchesRunning}/${matchesPending}`, () => {
      const selector = parseFieldSelector(text, strategyOf('Pod'));
      assert.equal(selector.matches(running), matchesRunning);
      assert.equal(selector.matches(pending), matchesPending);
    });
  }

  test('other kinds select by metadata and their own fields', () => {
    const node: KubeObject = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'n1' },
      spec: { unschedulable: true },
    };
    assert.equal(
      parseFieldSelector('spec.unschedulable=true,metadata.name=n1', strategyOf('Node')).matches(node),
      true,
    );
    assert.deepEqual(
      parseFieldSelector('metadata.name=a', strategyOf('ConfigMap')).toString(),
      'metadata.name=a',
    );
    assert.throws(
      () => parseFieldSelector('data=a', strategyOf('ConfigMap')),
      /supported: metadata.name, metadata.namespace$/,
    );
  });

  const bad: [string, string, string, RegExp][] = [
    [
      'spec.nodeName=n1',
      'ConfigMap',
      'spec.nodeName=n1',
      /"spec.nodeName" is not supported for ConfigMap; supported: metadata.name, metadata.namespace/,
    ],
    ['metadata.name=a,foo', 'Pod', 'foo', /expected field=value/],
    ['metadata.name in (a)', 'Pod', 'metadata.name in (a)', /expected field=value/],
    [
      'status.phase=Running,spec.host=x',
      'Pod',
      'spec.host=x',
      /not supported for Pod; supported: .*spec.nodeName/,
    ],
    ['a=b=c', 'Pod', 'a=b=c', /expected field=value/],
  ];
  for (const [text, kind, term, message] of bad) {
    test(`${JSON.stringify(text)} on ${kind} is rejected naming the term`, () => {
      assert.throws(
        () => parseFieldSelector(text, strategyOf(kind)),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === 'fieldSelector' &&
          err.message.includes(`term ${JSON.stringify(term)}`) &&
          message.test(err.message),
      );
    });
  }
});

describe('hostile selector text', () => {
  /**
   * The CPU time `run` takes, in ms: the work done. Wall time also counts the time other processes
   * had the CPU, tens of ms on a loaded machine (the suite runs test files concurrently).
   */
  const elapsedMs = (run: () => void): number => {
    const started = process.cpuUsage();
    try {
      run();
    } catch {
      // Refusing is as good as parsing here; only the time counts.
    }
    const spent = process.cpuUsage(started);
    return (spent.user + spent.system) / 1000;
  };

  test('a field term of thousands of spaces is refused in milliseconds (it backtracked for seconds)', () => {
    for (const term of [`a=${' '.repeat(5000)}!`, `a${' '.repeat(5000)}=!`, `a!=${' '.repeat(5000)}=`]) {
      assert.ok(
        elapsedMs(() => parseFieldSelector(term, strategyOf('Pod'))) < 50,
        JSON.stringify(term.slice(0, 8)),
      );
      assert.throws(() => parseFieldSelector(term, strategyOf('Pod')), InvalidArgumentError);
    }
  });

  test('field terms split at the first operator, with spaces around each side', () => {
    const parsed = parseFieldSelector(
      ' metadata.name == web , spec.nodeName!= n1 ,metadata.namespace=',
      strategyOf('Pod'),
    );
    assert.deepEqual(
      parsed.requirements.map((r) => [r.field, r.operator, r.value]),
      [
        ['metadata.name', 'Equals', 'web'],
        ['spec.nodeName', 'NotEquals', 'n1'],
        ['metadata.namespace', 'Equals', ''],
      ],
    );
    for (const bad of [
      'metadata.name',
      '=web',
      'metadata.name=a=b',
      'metadata.name!web',
      'meta data.name=a',
      'metadata.name=!a',
    ]) {
      assert.throws(
        () => parseFieldSelector(bad, strategyOf('Pod')),
        (err: unknown) => err instanceof InvalidArgumentError && err.field === 'fieldSelector',
        bad,
      );
    }
  });

  test('long label selectors of every shape parse or are refused in milliseconds', () => {
    const long = 5000;
    for (const text of [
      `a=${' '.repeat(long)}!`,
      `a in (${'b,'.repeat(long)}`,
      `${'a'.repeat(long)}!`,
      `a notin (${' '.repeat(long)})`,
      `${'!'.repeat(long)}a`,
      `a,${','.repeat(long)}`,
    ]) {
      assert.ok(elapsedMs(() => parseLabelSelector(text)) < 50, JSON.stringify(text.slice(0, 8)));
    }
  });
});
