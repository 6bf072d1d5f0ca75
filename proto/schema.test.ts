import { test } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs';
import descriptor from './gen/schema.json' with { type: 'json' };
import { PROTO_PACKAGE, eagerSetup, messageType, resolvedTypeOf, schemaRoot } from './schema.js';

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

test('codecs made on first use behave as protobufjs makes them all at once', () => {
  const lazy = messageType('Pod');
  // protobufjs's own setup, every codec at once, on a root built whole
  const wholeRoot = protobuf.Root.fromJSON(descriptor as protobuf.INamespace);
  wholeRoot.resolveAll();
  const setUp = (namespace: protobuf.NamespaceBase): void => {
    for (const nested of namespace.nestedArray) {
      if (nested instanceof protobuf.Type) eagerSetup.call(nested);
      if (nested instanceof protobuf.Namespace) setUp(nested);
    }
  };
  setUp(wholeRoot);
  const whole = wholeRoot.lookupType(`${PROTO_PACKAGE}.Pod`);
  const value = {
    metadata: { name: 'web-0', namespace: 'default', labels: { app: 'web' }, generation: '3' },
    spec: {
      containers: [{ name: 'web', image: 'web:1', ports: [{ containerPort: 80, protocol: 'TCP' }] }],
      nodeName: 'n1',
      priority: 5,
    },
  };
  const lazyBytes = lazy.encode(lazy.fromObject(value)).finish();
  const wholeBytes = whole.encode(whole.fromObject(value)).finish();
  assert.deepEqual(Buffer.from(lazyBytes), Buffer.from(wholeBytes));
  const options = { longs: String, enums: String, defaults: false };
  assert.deepEqual(
    lazy.toObject(lazy.decode(wholeBytes), options),
    whole.toObject(whole.decode(lazyBytes), options),
  );
  assert.equal(lazy.verify(value), whole.verify(value));
  assert.equal(lazy.verify({ metadata: 'not a message' }), whole.verify({ metadata: 'not a message' }));
});
