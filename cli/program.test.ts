import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { VERBS, buildProgram, verbOf } from './program.js';

test('a named verb loads only that verb’s command; help and unknown words load them all', async () => {
  for (const verb of Object.keys(VERBS)) {
    const program = await buildProgram([verb, '--help']);
    assert.deepEqual(
      program.commands.map((c) => c.name()),
      [verb],
      `skiff ${verb}`,
    );
  }
  for (const args of [[], ['--help'], ['help', 'get'], ['gte', 'pods']]) {
    const program = await buildProgram(args);
    assert.deepEqual(
      program.commands.map((c) => c.name()),
      Object.keys(VERBS),
      `skiff ${args.join(' ')}`,
    );
  }
});

test('the verb is found behind global options and their values', () => {
  const program = new Command();
  program.option('--server <host:port>').option('--token <token>').option('--request-timeout <ms>');
  assert.equal(verbOf(program, ['get', 'ns']), 'get');
  assert.equal(verbOf(program, ['--server', '127.0.0.1:1', 'get', 'ns']), 'get');
  assert.equal(verbOf(program, ['--server=127.0.0.1:1', '--token', 'get', 'version']), 'version');
  assert.equal(verbOf(program, ['--request-timeout', '5', '--', 'get']), undefined);
  assert.equal(verbOf(program, ['-h']), undefined);
});
