import { test } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs';
import descriptor from './gen/schema.json' with { type: 'json' };
import { PROTO_PACKAGE, messageType, resolvedTypeOf, schemaRoot } from './schema.js';

test('every type of the schema resolves (schemaRoot resolves them one by one as they are used)', () => {
  const root = protobuf.Root.fromJSON(descriptor as protobuf.INamespace);
  assert.doesNotThrow(() => root.resolveAll());
});

test('resolvedTypeOf resolves a field of the shared root on first use', () => {
  const pod = messageType('Pod');
  const spec = resolvedTypeOf(pod.fields['spec']!);
  assert.ok(spec instanceof protobuf.Type);
  assert.equal(spec.name, 'PodSpec');
  assert.equal(resolvedTypeOf(pod.fields['spec']!), spec);
});

test('the shared root makes each type from the descriptor as it is looked up, the same as a root built whole', () => {
  const whole = protobuf.Root.fromJSON(descriptor as protobuf.INamespace);
  const pkg = whole.lookup(PROTO_PACKAGE) as protobuf.Namespace;
  assert.ok(pkg.nestedArray.length > 100);
  for (const each of pkg.nestedArray) {
    const lazy = schemaRoot().lookup(`${PROTO_PACKAGE}.${each.name}`);
    assert.ok(lazy, `${each.name} is found`);
    assert.equal(JSON.stringify(lazy.toJSON()), JSON.stringify(each.toJSON()), each.name);
  }
  assert.equal(schemaRoot().lookup(`${PROTO_PACKAGE}.NoSuchType`), null);
});
