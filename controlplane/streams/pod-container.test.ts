import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../proto/errors.js';
import type { Pod } from '../../proto/gen/types.js';
import { podContainer } from './pod-container.js';

function pod(containers: string[], init: string[] = [], annotation?: string): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'web',
      namespace: 'default',
      ...(annotation ? { annotations: { 'kubectl.kubernetes.io/default-container': annotation } } : {}),
    },
    spec: {
      containers: containers.map((name) => ({ name, image: 'busybox' })),
      ...(init.length ? { initContainers: init.map((name) => ({ name, image: 'busybox' })) } : {}),
    },
  } as Pod;
}

test('the container named, of any kind; an unknown one lists the choices', () => {
  assert.deepEqual(podContainer(pod(['a', 'b'], ['i']), 'b', 'logs'), { name: 'b', init: false });
  assert.deepEqual(podContainer(pod(['a', 'b'], ['i']), 'i', 'logs'), { name: 'i', init: true });
  assert.throws(
    () => podContainer(pod(['a', 'b'], ['i']), 'c', 'exec pod default/web'),
    (err: unknown) =>
      err instanceof InvalidArgumentError &&
      err.field === 'container' &&
      err.message ===
        'exec pod default/web: container "c" is not valid for pod "web"; choose one of: [a b] or one of the init containers: [i]',
  );
});

test('without a name: the default-container annotation, else the only container, else an error listing them', () => {
  assert.deepEqual(podContainer(pod(['a', 'b'], [], 'b'), undefined, 'logs'), { name: 'b', init: false });
  assert.deepEqual(podContainer(pod(['a'], ['i']), undefined, 'logs'), { name: 'a', init: false });
  // an annotation naming no container is ignored, as kubectl does
  assert.deepEqual(podContainer(pod(['a'], [], 'gone'), undefined, 'logs'), { name: 'a', init: false });
  assert.throws(
    () => podContainer(pod(['a', 'b']), undefined, 'logs pod default/web'),
    /logs pod default\/web: a container name must be specified for pod "web" \(-c\), choose one of: \[a b\]$/,
  );
});
