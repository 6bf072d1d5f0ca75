import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Pod } from '../../proto/gen/types.js';
import { kindInfoOf } from '../../proto/kinds.js';
import { messages } from '../../proto/gen/messages.js';
import { encodeObject, toEnvelope } from '../../proto/objects.js';
import { ApiObject } from './api-object.js';

const pod: Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'default', uid: 'u', generation: 2, labels: { app: 'web' } },
  spec: {
    containers: [
      { name: 'c', image: 'busybox', ports: [{ containerPort: 80 }], resources: { limits: { cpu: '500m' } } },
    ],
  },
  status: { phase: 'Running' },
};

function wireBytes(envelope: Record<string, unknown>): Buffer {
  return messages.Object.encode(envelope);
}

describe('ApiObject', () => {
  const info = kindInfoOf('Pod');

  test('the wire form built from stored bytes equals the one built from the object', () => {
    const stored = ApiObject.fromStored(info, encodeObject(pod), '42');
    const expected = toEnvelope({ ...pod, metadata: { ...pod.metadata, resourceVersion: '42' } });
    assert.deepEqual(wireBytes(stored.envelope()), wireBytes(expected));
  });

  test('the object is decoded on demand, with its resourceVersion', () => {
    const stored = ApiObject.fromStored(info, encodeObject(pod), '7');
    assert.equal(stored.object.metadata.resourceVersion, '7');
    assert.deepEqual(
      { ...stored.object, metadata: { ...stored.object.metadata, resourceVersion: undefined } },
      {
        ...pod,
        metadata: { ...pod.metadata, resourceVersion: undefined },
      },
    );
  });

  test('an object without stored bytes goes to the wire through toEnvelope', () => {
    const withVersion: Pod = { ...pod, metadata: { ...pod.metadata, resourceVersion: '9' } };
    const only = ApiObject.fromObject(info, withVersion);
    assert.equal(only.resourceVersion, '9');
    assert.deepEqual(wireBytes(only.envelope()), wireBytes(toEnvelope(withVersion)));
  });
});
