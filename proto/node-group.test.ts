import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  isNodeGroupMemberName,
  nodeGroupMember,
  nodeGroupNameProblem,
  nodeGroupOfName,
} from './node-group.js';
import { formatNatsAuthorization, natsAuthorizationUsers } from './support/nats-authorization.js';

describe('node groups', () => {
  test('members are <group>-<digits>, and only those', () => {
    assert.equal(nodeGroupMember('hollow', 7), 'hollow-0007');
    assert.equal(nodeGroupMember('hollow', 12345), 'hollow-12345');
    assert.equal(nodeGroupOfName('hollow-0007'), 'hollow');
    assert.equal(nodeGroupOfName('rack-a-12'), 'rack-a');
    assert.equal(nodeGroupOfName('hollow'), undefined);
    assert.equal(nodeGroupOfName('hollow-07x'), undefined);
    assert.equal(nodeGroupOfName('n1.example.com'), undefined);
    assert.ok(isNodeGroupMemberName('hollow', 'hollow-0001'));
    assert.ok(!isNodeGroupMemberName('hollow', 'hollowx-0001'));
    assert.ok(!isNodeGroupMemberName('rack', 'rack-a-0001'), 'another group whose name starts the same');
  });

  test('a group name ends with a letter, so no member of one group is a member of another', () => {
    assert.equal(nodeGroupNameProblem('hollow'), undefined);
    assert.equal(nodeGroupNameProblem('rack-a'), undefined);
    assert.match(nodeGroupNameProblem('rack-1') ?? '', /end with a letter/);
    assert.match(nodeGroupNameProblem('Rack') ?? '', /lower-case/);
    assert.match(nodeGroupNameProblem('a.b') ?? '', /lower-case/);
    assert.match(nodeGroupNameProblem('') ?? '', /empty/);
    assert.match(nodeGroupNameProblem('a'.repeat(41)) ?? '', /40/);
  });

  test('a group is one NATS user publishing only under its own subject', () => {
    const text = formatNatsAuthorization(['n1'], ['hollow', 'Bad.Group']);
    assert.match(
      text,
      /\{ user: "CN=system:node-group:hollow,O=system:nodes", permissions: \{ publish: \{ allow: \["skiff\.node-group\.hollow\.>"\] \}/,
    );
    assert.doesNotMatch(text, /Bad/);
    assert.deepEqual(natsAuthorizationUsers(text), { nodes: ['n1'], groups: ['hollow'] });
  });
});
