import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PermissionDeniedError } from '../../proto/errors.js';
import type { Pod } from '../../proto/gen/types.js';
import { nodePrincipalOf } from './auth.js';
import { NodeAuthorizer, podReferences, selectedValue, type NodeRequest } from './node-authorizer.js';

const pod = (name: string, nodeName: string, spec: Partial<Pod['spec']> = {}): Pod =>
  ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: { nodeName, containers: [{ name: 'c', image: 'i' }], ...spec },
  }) as Pod;

const pods = [
  pod('web', 'n1', {
    serviceAccountName: 'web-sa',
    imagePullSecrets: [{ name: 'pull' }],
    volumes: [
      { name: 'cfg', configMap: { name: 'web-config' } },
      { name: 'tls', secret: { secretName: 'web-tls' } },
      { name: 'all', projected: { sources: [{ secret: { name: 'projected' } }] } },
    ],
    containers: [
      {
        name: 'c',
        image: 'i',
        env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }],
        envFrom: [{ configMapRef: { name: 'env-config' } }],
      },
    ],
  }),
  pod('other', 'n2', { volumes: [{ name: 's', secret: { secretName: 'other-secret' } }] }),
];

const authorizer = new NodeAuthorizer({
  pod: async (namespace, name) =>
    pods.find((each) => each.metadata.namespace === namespace && each.metadata.name === name),
  podsOn: async (node) => pods.filter((each) => each.spec.nodeName === node),
});

const allowed = (request: Partial<NodeRequest>, node = 'n1') =>
  authorizer.authorize(node, { verb: 'get', kind: '', namespace: '', name: '', ...request });
const refused = (request: Partial<NodeRequest>, pattern: RegExp, node = 'n1') =>
  assert.rejects(
    allowed(request, node),
    (err) => err instanceof PermissionDeniedError && pattern.test(err.message),
  );

describe('the node authorizer', () => {
  test('Nodes: any may be read, only its own written, none deleted', async () => {
    for (const verb of ['get', 'list', 'watch'] as const) await allowed({ verb, kind: 'Node', name: 'n2' });
    for (const verb of ['create', 'update', 'updateStatus'] as const) {
      await allowed({ verb, kind: 'Node', name: 'n1' });
      await refused(
        { verb, kind: 'Node', name: 'n2' },
        /refused for node "n1": a node may \w+ only its own Node/,
      );
    }
    await refused({ verb: 'delete', kind: 'Node', name: 'n1' }, /may not delete Nodes/);
  });

  test('its own Lease in kube-node-lease, no other', async () => {
    await allowed({ verb: 'update', kind: 'Lease', namespace: 'kube-node-lease', name: 'n1' });
    await refused({ verb: 'update', kind: 'Lease', namespace: 'kube-node-lease', name: 'n2' }, /own Lease/);
    await refused({ verb: 'get', kind: 'Lease', namespace: 'default', name: 'n1' }, /own Lease/);
  });

  test('pods: listed and watched only by spec.nodeName=<node>; read, status and delete only when bound to it', async () => {
    await allowed({ verb: 'watch', kind: 'Pod', fieldSelector: 'spec.nodeName=n1' });
    await allowed({ verb: 'list', kind: 'Pod', fieldSelector: 'status.phase!=Failed,spec.nodeName==n1' });
    await refused({ verb: 'watch', kind: 'Pod' }, /select them with the field selector spec.nodeName=n1/);
    await refused({ verb: 'list', kind: 'Pod', fieldSelector: 'spec.nodeName=n2' }, /only its own pods/);
    await refused({ verb: 'list', kind: 'Pod', fieldSelector: 'spec.nodeName!=n1' }, /only its own pods/);
    for (const verb of ['get', 'updateStatus', 'delete'] as const) {
      await allowed({ verb, kind: 'Pod', namespace: 'default', name: 'web' });
      await refused({ verb, kind: 'Pod', namespace: 'default', name: 'other' }, /bound to another node/);
    }
    await refused({ verb: 'get', kind: 'Pod', namespace: 'default', name: 'gone' }, /no pod default\/gone/);
    await refused({ verb: 'create', kind: 'Pod', namespace: 'default', name: 'x' }, /may not create pods/);
  });

  test('Secrets, ConfigMaps, ServiceAccounts: only those its pods reference', async () => {
    for (const name of ['db', 'web-tls', 'projected', 'pull'])
      await allowed({ verb: 'get', kind: 'Secret', namespace: 'default', name });
    for (const name of ['web-config', 'env-config'])
      await allowed({ verb: 'get', kind: 'ConfigMap', namespace: 'default', name });
    await allowed({ verb: 'get', kind: 'ServiceAccount', namespace: 'default', name: 'web-sa' });
    await refused(
      { verb: 'get', kind: 'Secret', namespace: 'default', name: 'other-secret' },
      /get Secret default\/other-secret: refused for node "n1": no pod bound to it references Secret default\/other-secret/,
    );
    await refused(
      { verb: 'get', kind: 'Secret', namespace: 'kube-system', name: 'db' },
      /no pod bound to it/,
    );
    await allowed({ verb: 'watch', kind: 'Secret', namespace: 'default', fieldSelector: 'metadata.name=db' });
    await refused({ verb: 'list', kind: 'Secret', namespace: 'default' }, /metadata.name=/);
    await refused({ verb: 'update', kind: 'Secret', namespace: 'default', name: 'db' }, /only read Secrets/);
    await refused({ verb: 'get', kind: 'Secret', namespace: 'default', name: 'db' }, /no pod bound/, 'n2');
  });

  test('Events may be created; every other kind is refused', async () => {
    await allowed({ verb: 'create', kind: 'Event', namespace: 'default', name: 'e' });
    await refused({ verb: 'list', kind: 'Event' }, /only create Events/);
    await refused(
      { verb: 'get', kind: 'Deployment', namespace: 'default', name: 'web' },
      /may not get Deployment/,
    );
    await refused({ verb: 'get', kind: 'unknown', namespace: 'default', name: 'web' }, /may not get/);
    await allowed({ verb: 'version' });
  });
});

test('selectedValue reads one equality term of a field selector', () => {
  assert.equal(selectedValue('spec.nodeName=n1', 'spec.nodeName'), 'n1');
  assert.equal(selectedValue(' a=b , spec.nodeName == n1 ', 'spec.nodeName'), 'n1');
  assert.equal(selectedValue('spec.nodeName!=n1', 'spec.nodeName'), undefined);
  assert.equal(selectedValue(undefined, 'spec.nodeName'), undefined);
});

test("a pod's service account defaults to default", () => {
  assert.deepEqual([...podReferences({ containers: [] }, 'ServiceAccount')], ['default']);
});

test('only CN=system:node:<name>, O=system:nodes is a node', () => {
  assert.deepEqual(nodePrincipalOf({ subject: { CN: 'system:node:n1', O: 'system:nodes' } }), {
    name: 'system:node:n1',
    role: 'node',
    node: 'n1',
  });
  assert.equal(nodePrincipalOf({ subject: { CN: 'system:node:n1' } }), undefined);
  assert.equal(nodePrincipalOf({ subject: { CN: 'skiff-controlplane', O: 'system:nodes' } }), undefined);
  assert.equal(nodePrincipalOf({ subject: { CN: 'system:node:Bad_Name', O: 'system:nodes' } }), undefined);
  assert.equal(
    nodePrincipalOf({ subject: { CN: ['system:node:a', 'system:node:b'], O: 'system:nodes' } }),
    undefined,
  );
  assert.equal(nodePrincipalOf(undefined), undefined);
});
