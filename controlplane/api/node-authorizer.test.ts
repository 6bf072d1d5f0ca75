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
  pod('hollow-pod', 'hollow-0001'),
  pod('impostor-pod', 'hollow-0002'),
];

/** hollow-0001 is the group's; hollow-0002 a real node that happens to be named like a member. */
const nodeLabels: Record<string, Record<string, string>> = {
  n1: {},
  n2: {},
  'hollow-0001': { 'skiff.io/node-group': 'hollow' },
  'hollow-0002': {},
  'other-0001': { 'skiff.io/node-group': 'other' },
};

const authorizer = new NodeAuthorizer({
  pod: async (namespace, name) =>
    pods.find((each) => each.metadata.namespace === namespace && each.metadata.name === name),
  podsOn: async (node) => pods.filter((each) => each.spec.nodeName === node),
  nodeLabels: async (name) => nodeLabels[name],
});

const allowed = (request: Partial<NodeRequest>, node = 'n1') =>
  authorizer.authorize({ node }, { verb: 'get', kind: '', namespace: '', name: '', ...request });
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

  test('Services and EndpointSlices: any may be read (each node load-balances and names them all), none written', async () => {
    for (const kind of ['Service', 'EndpointSlice']) {
      for (const verb of ['get', 'list', 'watch'] as const)
        await allowed({
          verb,
          kind,
          namespace: verb === 'get' ? 'shop' : '',
          name: verb === 'get' ? 'web' : '',
        });
      for (const verb of ['create', 'update', 'updateStatus', 'delete'] as const)
        await refused(
          { verb, kind, namespace: 'shop', name: 'web' },
          new RegExp(`a node may only read ${kind}s`),
        );
    }
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

  describe('a node group (hollow nodes)', () => {
    const group = { nodeGroup: 'hollow' };
    const GROUP_LABELS = { 'skiff.io/node-group': 'hollow' };
    const groupAllowed = (request: Partial<NodeRequest>) =>
      authorizer.authorize(group, { verb: 'get', kind: '', namespace: '', name: '', ...request });
    const groupRefused = (request: Partial<NodeRequest>, pattern: RegExp) =>
      assert.rejects(
        groupAllowed(request),
        (err) =>
          err instanceof PermissionDeniedError &&
          /refused for node group "hollow"/.test(err.message) &&
          pattern.test(err.message),
      );

    test('Nodes: creates and writes its members only, labelled with the group', async () => {
      await groupAllowed({ verb: 'list', kind: 'Node' });
      await groupAllowed({ verb: 'create', kind: 'Node', name: 'hollow-0007', labels: GROUP_LABELS });
      await groupAllowed({ verb: 'updateStatus', kind: 'Node', name: 'hollow-0001', labels: GROUP_LABELS });
      await groupRefused({ verb: 'create', kind: 'Node', name: 'hollow-0007' }, /carry the label/);
      await groupRefused(
        { verb: 'create', kind: 'Node', name: 'n1', labels: GROUP_LABELS },
        /only its members/,
      );
      await groupRefused(
        { verb: 'create', kind: 'Node', name: 'hollowx-0001', labels: GROUP_LABELS },
        /only its members/,
      );
      // a real node named like a member, and another group's member
      await groupRefused(
        { verb: 'updateStatus', kind: 'Node', name: 'hollow-0002', labels: GROUP_LABELS },
        /only its members/,
      );
      await groupRefused(
        { verb: 'update', kind: 'Node', name: 'other-0001', labels: GROUP_LABELS },
        /only its members/,
      );
      await groupRefused({ verb: 'delete', kind: 'Node', name: 'hollow-0001' }, /may not delete/);
    });

    test('pods: watched by spec.nodeGroup=<group>; status and delete only on its members', async () => {
      await groupAllowed({ verb: 'watch', kind: 'Pod', fieldSelector: 'spec.nodeGroup=hollow' });
      await groupRefused(
        { verb: 'watch', kind: 'Pod', fieldSelector: 'spec.nodeGroup=other' },
        /spec.nodeGroup=hollow/,
      );
      await groupRefused(
        { verb: 'list', kind: 'Pod', fieldSelector: 'spec.nodeName=hollow-0001' },
        /only its pods/,
      );
      for (const verb of ['get', 'updateStatus', 'delete'] as const) {
        await groupAllowed({ verb, kind: 'Pod', namespace: 'default', name: 'hollow-pod' });
        await groupRefused(
          { verb, kind: 'Pod', namespace: 'default', name: 'web' },
          /not bound to one of its members/,
        );
        await groupRefused(
          { verb, kind: 'Pod', namespace: 'default', name: 'impostor-pod' },
          /not bound to one of its members/,
        );
      }
      await groupRefused(
        { verb: 'update', kind: 'Pod', namespace: 'default', name: 'hollow-pod' },
        /only their status/,
      );
    });

    test('nothing a hollow node does not need: Secrets, ConfigMaps; Events may be recorded', async () => {
      await groupAllowed({ verb: 'create', kind: 'Event', namespace: 'default', name: 'e' });
      await groupRefused({ verb: 'get', kind: 'Secret', namespace: 'default', name: 'web-tls' }, /hollow/);
      await groupRefused(
        { verb: 'get', kind: 'ConfigMap', namespace: 'default', name: 'web-config' },
        /hollow/,
      );
      await groupRefused(
        { verb: 'get', kind: 'Lease', namespace: 'kube-node-lease', name: 'n1' },
        /Leases of its members/,
      );
    });

    test('its certificate makes a group principal; a bad group name makes none', () => {
      assert.deepEqual(
        { ...nodePrincipalOf({ subject: { CN: 'system:node-group:hollow', O: 'system:nodes' } }) },
        { name: 'system:node-group:hollow', role: 'node', nodeGroup: 'hollow' },
      );
      assert.equal(
        nodePrincipalOf({ subject: { CN: 'system:node-group:Bad.Name', O: 'system:nodes' } }),
        undefined,
      );
      assert.equal(nodePrincipalOf({ subject: { CN: 'system:node-group:hollow', O: 'other' } }), undefined);
    });
  });
});
