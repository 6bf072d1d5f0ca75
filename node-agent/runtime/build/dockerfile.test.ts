import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../proto/errors.js';
import { jsonForm, parseDockerfile, substitute, substituteWords } from './dockerfile.js';
import { StageEvaluator, planBuild } from './build-plan.js';

const vars = (o: Record<string, string>) => new Map(Object.entries(o));

/** Asserts `fn` throws an InvalidArgumentError whose message names `line` and matches `pattern`. */
function throwsAtLine(fn: () => unknown, line: number, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, String(err));
    assert.match(err.message, new RegExp(`^Dockerfile:${line}: `));
    assert.match(err.message, pattern);
    return true;
  });
}

describe('Dockerfile parser', () => {
  test('joins continuation lines, skipping comments and blank lines inside them; keeps the start line', () => {
    const parsed = parseDockerfile(
      [
        '# a comment',
        'FROM busybox',
        '',
        'RUN echo a \\',
        '  # inside',
        '',
        '    && echo b',
        'CMD ["sh"]',
      ].join('\n'),
    );
    assert.deepEqual(
      parsed.instructions.map((i) => [i.line, i.keyword, i.args]),
      [
        [2, 'FROM', 'busybox'],
        [4, 'RUN', 'echo a     && echo b'],
        [8, 'CMD', '["sh"]'],
      ],
    );
  });

  test('the escape directive changes the continuation character; syntax is accepted and ignored', () => {
    const parsed = parseDockerfile(
      ['# syntax=docker/dockerfile:1', '# escape=`', 'FROM x', 'RUN dir c:\\ `', '  && echo'].join('\n'),
    );
    assert.equal(parsed.escape, '`');
    assert.equal(parsed.instructions[1]!.args, 'dir c:\\   && echo');
    // a directive after an instruction is a comment
    const late = parseDockerfile('FROM x\n# escape=`\nRUN a \\\n b');
    assert.equal(late.escape, '\\');
    assert.equal(late.instructions[1]!.args, 'a  b');
  });

  test('instructions are case-insensitive; flags are split off and checked', () => {
    const parsed = parseDockerfile('from x\ncopy --from=build --chown=1:2 a b');
    const copy = parsed.instructions[1]!;
    assert.equal(copy.keyword, 'COPY');
    assert.deepEqual(
      [...copy.flags],
      [
        ['from', 'build'],
        ['chown', '1:2'],
      ],
    );
    assert.equal(copy.args, 'a b');
  });

  test('an unknown instruction and a bad flag name their line', () => {
    throwsAtLine(() => parseDockerfile('FROM x\n\nFROB y'), 3, /unknown instruction: FROB/);
    throwsAtLine(() => parseDockerfile('FROM x\nCOPY --frm=a b c'), 2, /unknown flag --frm for COPY/);
    throwsAtLine(
      () => parseDockerfile('FROM x\nRUN --mount=type=cache true'),
      2,
      /RUN --mount is not supported/,
    );
    throwsAtLine(() => parseDockerfile('FROM x\nCOPY --from= a b'), 2, /needs a value/);
  });

  test('JSON-array forms, and text that only looks like one', () => {
    assert.deepEqual(jsonForm('["a", "b c"]'), ['a', 'b c']);
    assert.equal(jsonForm('[a, b]'), undefined);
    assert.equal(jsonForm('echo [x]'), undefined);
    assert.equal(jsonForm('[1, 2]'), undefined);
  });
});

describe('variable substitution', () => {
  const v = vars({ A: 'x', EMPTY: '', SP: 'a b' });
  test('$VAR, ${VAR}, defaults and alternatives', () => {
    assert.equal(substitute('$A/${A}_$NOPE.', v, '\\', 1), 'x/x_.');
    assert.equal(substitute('${NOPE:-d} ${EMPTY:-d} ${A:-d}', v, '\\', 1), 'd d x');
    assert.equal(substitute('${NOPE:+y}|${EMPTY:+y}|${A:+y}', v, '\\', 1), '||y');
    assert.equal(substitute('${EMPTY-d}|${NOPE-d}|${EMPTY+y}', v, '\\', 1), '|d|y');
  });
  test('quotes: single quotes keep $ literal, double quotes substitute; escaped $ stays', () => {
    assert.equal(substitute(`'$A' "$A" \\$A`, v, '\\', 1), '$A x $A');
    assert.deepEqual(substituteWords(`$SP "$SP" 'c d'`, v, '\\', 1), ['a', 'b', 'a b', 'c d']);
  });
  test('a bad substitution names its line', () => {
    throwsAtLine(() => substitute('${A', v, '\\', 7), 7, /missing '}'/);
    throwsAtLine(() => substitute('${1x}', v, '\\', 8), 8, /bad substitution/);
  });
});

describe('stages and ARG scoping', () => {
  const plan = (text: string, args: Record<string, string> = {}, target?: string) =>
    planBuild(parseDockerfile(text), vars(args), target);

  test('an ARG before FROM is seen by FROM lines only, and in a stage once declared again', () => {
    const p = plan('ARG V=1\nARG BASE=busybox:$V\nFROM $BASE AS one\nARG V\nENV X=$V Y=${BASE:-none}\n');
    assert.deepEqual(p.stages[0]!.base, { image: 'busybox:1' });
    const ev = new StageEvaluator(p, {});
    for (const ins of p.stages[0]!.instructions) ev.apply(ins);
    assert.deepEqual(ev.config.Env, ['X=1', 'Y=none']);
  });

  test('--build-arg overrides defaults, before and after FROM; unused ones are reported', () => {
    const p = plan('ARG V=1\nFROM img:$V\nARG W=2\nRUN echo', { V: '9', W: '8', Z: '0' });
    assert.deepEqual(p.stages[0]!.base, { image: 'img:9' });
    const ev = new StageEvaluator(p, {});
    ev.apply(p.stages[0]!.instructions[0]!);
    const run = ev.apply(p.stages[0]!.instructions[1]!);
    assert.equal(run.step.kind, 'run');
    assert.deepEqual(run.step.kind === 'run' ? run.step.env : [], ['W=8']);
    assert.deepEqual(p.unusedBuildArgs, ['Z']);
  });

  test('ENV wins over an ARG of the same name, and an ARG is not kept in the image', () => {
    const p = plan('FROM x\nARG A=arg\nENV A=env\nENV B=$A\n');
    const ev = new StageEvaluator(p, {});
    for (const ins of p.stages[0]!.instructions) ev.apply(ins);
    assert.deepEqual(ev.config.Env, ['A=env', 'B=env']);
  });

  test('--target picks a stage and the stages it needs, by FROM and COPY --from', () => {
    const p = plan(
      'FROM a AS base\nFROM b AS tools\nFROM base AS app\nCOPY --from=tools /x /x\nFROM c AS other\n',
      {},
      'app',
    );
    assert.deepEqual(p.order, [0, 1, 2]);
    assert.equal(p.target, 2);
    assert.deepEqual(p.stages[2]!.base, { stage: 0 });
    assert.throws(
      () => plan('FROM a AS x\n', {}, 'nope'),
      /--target nope: no stage has that name \(stages: x\)/,
    );
  });

  test('the automatic platform ARGs and FROM --platform', () => {
    const p = planBuild(
      parseDockerfile(
        'FROM --platform=$BUILDPLATFORM img:$TARGETARCH AS a\nARG TARGETOS\nENV OS=$TARGETOS\n',
      ),
      new Map(),
      undefined,
      { os: 'linux', architecture: 'arm64' },
    );
    assert.equal(p.stages[0]!.platform, 'linux/arm64');
    assert.deepEqual(p.stages[0]!.base, { image: 'img:arm64' });
    const ev = new StageEvaluator(p, {});
    for (const ins of p.stages[0]!.instructions) ev.apply(ins);
    assert.deepEqual(ev.config.Env, ['OS=linux']);
  });

  test('only ARG may come before FROM', () => {
    throwsAtLine(() => plan('ENV A=1\nFROM x'), 1, /ENV before the first FROM/);
  });

  test('the config instructions: shell and exec forms, EXPOSE, LABEL, HEALTHCHECK, WORKDIR, ENTRYPOINT resets CMD', () => {
    const p = plan(
      [
        'FROM x',
        'ENV DIR=/srv',
        'WORKDIR $DIR',
        'WORKDIR app',
        'USER 1000:1000',
        'EXPOSE 80 53/udp 8000-8001',
        'LABEL "a b"="c d" e=f',
        'STOPSIGNAL SIGINT',
        'VOLUME ["/data"]',
        'HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD curl -f http://localhost/',
        'ENTRYPOINT ["/bin/app"]',
        'CMD --serve',
      ].join('\n'),
    );
    const ev = new StageEvaluator(p, { Cmd: ['from-base'] });
    const steps = p.stages[0]!.instructions.map((i) => ev.apply(i));
    assert.deepEqual(steps[2]!.step, { kind: 'workdir', path: '/srv/app' });
    assert.deepEqual(ev.config, {
      Env: ['DIR=/srv'],
      WorkingDir: '/srv/app',
      User: '1000:1000',
      ExposedPorts: { '80/tcp': {}, '53/udp': {}, '8000/tcp': {}, '8001/tcp': {} },
      Labels: { 'a b': 'c d', e: 'f' },
      StopSignal: 'SIGINT',
      Volumes: { '/data': {} },
      Healthcheck: {
        Test: ['CMD-SHELL', 'curl -f http://localhost/'],
        Interval: 30_000_000_000,
        Timeout: 90_000_000_000,
        Retries: 3,
      },
      Entrypoint: ['/bin/app'],
      Cmd: ['/bin/sh', '-c', '--serve'],
    });
    const reset = new StageEvaluator(plan('FROM x\nENTRYPOINT top'), { Cmd: ['from-base'] });
    reset.apply(plan('FROM x\nENTRYPOINT top').stages[0]!.instructions[0]!);
    assert.deepEqual([reset.config.Entrypoint, reset.config.Cmd], [['/bin/sh', '-c', 'top'], null]);
  });

  test('COPY: relative destinations follow WORKDIR, flags are checked, ADD of a URL is refused', () => {
    const p = plan(
      'FROM x\nWORKDIR /app\nCOPY --chmod=0640 a b ./\nCOPY --chmod=9 a b\nADD https://e.x/f /f',
    );
    const ev = new StageEvaluator(p, {});
    const [, copy] = p.stages[0]!.instructions.map((i, n) => (n < 2 ? ev.apply(i) : undefined));
    assert.deepEqual(copy!.step, {
      kind: 'copy',
      add: false,
      sources: ['a', 'b'],
      dest: '/app/',
      chmod: 0o640,
    });
    throwsAtLine(() => ev.apply(p.stages[0]!.instructions[2]!), 4, /not an octal mode/);
    throwsAtLine(
      () => ev.apply(p.stages[0]!.instructions[3]!),
      5,
      /ADD https:\/\/e\.x\/f: adding from a URL is not supported/,
    );
  });
});
