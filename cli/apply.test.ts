import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  LAST_APPLIED_ANNOTATION,
  canonicalJson,
  resourceName,
  threeWayMerge,
  withLastApplied,
} from './apply.js';

const deployment = (spec: Record<string, unknown>) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'demo' },
  spec,
});

/** What the server would hold after creating `manifest`, plus what others did to it. */
function liveAfterCreate(manifest: Record<string, unknown>, mutate: (o: any) => void = () => {}) {
  const live: any = withLastApplied(manifest);
  live.metadata.resourceVersion = '7';
  live.metadata.uid = 'u1';
  live.status = { replicas: 2 };
  mutate(live);
  return live;
}

describe('withLastApplied', () => {
  test('stores the manifest itself, canonical, without the annotation', () => {
    const m = deployment({ replicas: 2 });
    const created: any = withLastApplied(m);
    assert.equal(created.metadata.annotations[LAST_APPLIED_ANNOTATION], canonicalJson(m));
    assert.equal((m.metadata as any).annotations, undefined, 'input not modified');
    const again: any = withLastApplied(created);
    assert.equal(again.metadata.annotations[LAST_APPLIED_ANNOTATION], canonicalJson(m));
  });
});

describe('threeWayMerge', () => {
  const containers = [{ name: 'web', image: 'busybox:1', env: [{ name: 'A', value: '1' }] }];
  const manifest = deployment({ replicas: 2, template: { spec: { containers } } });

  test('the same manifest again is unchanged, though status and server fields exist', () => {
    const live = liveAfterCreate(manifest, (o) => {
      o.spec.strategy = { type: 'RollingUpdate' };
      o.spec.template.spec.containers[0].imagePullPolicy = 'IfNotPresent';
    });
    const { changed, merged } = threeWayMerge(live, manifest);
    assert.equal(changed, false);
    assert.equal((merged as any).metadata.resourceVersion, '7');
  });

  test('live and desired are copied, not modified: typed arrays and inherited names included', () => {
    const odd = JSON.parse('{"__proto__": {"x": 1}, "constructor": "c"}');
    const withBinary = { ...deployment({ replicas: 1 }), binaryData: { b: new Uint8Array([1, 2]) }, odd };
    const live = liveAfterCreate(withBinary);
    const liveBefore = structuredClone(live);
    const desiredBefore = structuredClone(withBinary);
    const edited = { ...withBinary, spec: { replicas: 4 } };
    const { merged } = threeWayMerge(live, edited) as any;
    assert.deepStrictEqual(live, liveBefore);
    assert.deepStrictEqual(withBinary, desiredBefore);
    assert.equal(merged.spec.replicas, 4);
    assert.deepStrictEqual(merged.binaryData.b, new Uint8Array([1, 2]));
    assert.notEqual(merged.binaryData.b, live.binaryData.b);
    assert.deepStrictEqual(Object.keys(merged.odd), ['__proto__', 'constructor']);
    assert.equal(Object.getPrototypeOf(merged.odd), Object.prototype);
  });

  test('an edited field is configured; others keep theirs', () => {
    const live = liveAfterCreate(manifest, (o) => (o.spec.strategy = { type: 'Recreate' }));
    const edited = deployment({ replicas: 3, template: { spec: { containers } } });
    const { changed, merged } = threeWayMerge(live, edited) as any;
    assert.equal(changed, true);
    assert.equal(merged.spec.replicas, 3);
    assert.deepEqual(merged.spec.strategy, { type: 'Recreate' });
    assert.deepEqual(merged.status, { replicas: 2 });
    assert.equal(JSON.parse(merged.metadata.annotations[LAST_APPLIED_ANNOTATION]).spec.replicas, 3);
  });

  test('replicas scaled by someone else survive a manifest that does not set them', () => {
    const noReplicas = deployment({ template: { spec: { containers } } });
    const live = liveAfterCreate(noReplicas, (o) => (o.spec.replicas = 5));
    const { changed, merged } = threeWayMerge(live, noReplicas) as any;
    assert.equal(changed, false);
    assert.equal(merged.spec.replicas, 5);
  });

  test('a field removed from the manifest is removed from live', () => {
    const live = liveAfterCreate(manifest);
    const { merged } = threeWayMerge(live, deployment({ template: { spec: { containers } } })) as any;
    assert.equal('replicas' in merged.spec, false);
  });

  test('null in the manifest removes the field', () => {
    const live = liveAfterCreate(manifest, (o) => (o.spec.paused = true));
    const { merged } = threeWayMerge(
      live,
      deployment({ replicas: 2, paused: null, template: { spec: { containers } } }),
    ) as any;
    assert.equal('paused' in merged.spec, false);
  });

  test('containers merge by name; env by name; server-added container fields survive', () => {
    const live = liveAfterCreate(manifest, (o) => {
      o.spec.template.spec.containers[0].imagePullPolicy = 'Always';
      o.spec.template.spec.containers[0].env.push({ name: 'INJECTED', value: 'x' });
      o.spec.template.spec.containers.push({ name: 'sidecar', image: 'proxy' });
    });
    const edited = deployment({
      replicas: 2,
      template: {
        spec: { containers: [{ name: 'web', image: 'busybox:2', env: [{ name: 'A', value: '2' }] }] },
      },
    });
    const { merged } = threeWayMerge(live, edited) as any;
    const [web, sidecar] = merged.spec.template.spec.containers;
    assert.equal(web.image, 'busybox:2');
    assert.equal(web.imagePullPolicy, 'Always');
    assert.deepEqual(web.env, [
      { name: 'A', value: '2' },
      { name: 'INJECTED', value: 'x' },
    ]);
    assert.deepEqual(sidecar, { name: 'sidecar', image: 'proxy' });
  });

  test('a container dropped from the manifest is removed', () => {
    const two = deployment({
      template: { spec: { containers: [...containers, { name: 'b', image: 'b' }] } },
    });
    const live = liveAfterCreate(two);
    const { merged } = threeWayMerge(live, deployment({ template: { spec: { containers } } })) as any;
    assert.deepEqual(
      merged.spec.template.spec.containers.map((c: any) => c.name),
      ['web'],
    );
  });

  test('container ports merge by containerPort, service ports by port, volumeMounts by mountPath', () => {
    const svc = (ports: unknown[]) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 's' },
      spec: { ports },
    });
    const live = liveAfterCreate(
      svc([{ port: 80, targetPort: 8080 }]),
      (o) => (o.spec.ports[0].protocol = 'TCP'),
    );
    const { merged, changed } = threeWayMerge(live, svc([{ port: 80, targetPort: 8080 }])) as any;
    assert.equal(changed, false);
    assert.equal(merged.spec.ports[0].protocol, 'TCP');

    const pod = (c: unknown) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec: { containers: [c] },
    });
    const c1 = {
      name: 'a',
      image: 'i',
      ports: [{ containerPort: 80 }],
      volumeMounts: [{ name: 'v', mountPath: '/d' }],
    };
    const livePod = liveAfterCreate(pod(c1), (o) => {
      o.spec.containers[0].ports[0].protocol = 'TCP';
      o.spec.containers[0].volumeMounts[0].readOnly = false;
    });
    const r = threeWayMerge(
      livePod,
      pod({ ...c1, ports: [{ containerPort: 80 }, { containerPort: 81 }] }),
    ) as any;
    assert.deepEqual(r.merged.spec.containers[0].ports, [
      { containerPort: 80, protocol: 'TCP' },
      { containerPort: 81 },
    ]);
    assert.equal(r.merged.spec.containers[0].volumeMounts[0].readOnly, false);
  });

  test('lists without a merge key are replaced', () => {
    const pod = (args: string[]) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec: { containers: [{ name: 'a', image: 'i', args }] },
    });
    const live = liveAfterCreate(pod(['x', 'y']));
    const { merged } = threeWayMerge(live, pod(['z'])) as any;
    assert.deepEqual(merged.spec.containers[0].args, ['z']);
  });

  test('an object never applied (no annotation) keeps live-only fields and gains the annotation', () => {
    const live: any = { ...deployment({ replicas: 1, paused: false }), status: {} };
    live.metadata = { ...live.metadata, resourceVersion: '3' };
    const { merged, changed } = threeWayMerge(live, deployment({ replicas: 1 })) as any;
    assert.equal(changed, true);
    assert.equal(merged.spec.paused, false);
    assert.ok(merged.metadata.annotations[LAST_APPLIED_ANNOTATION]);
  });

  test('a broken annotation is treated as absent: the manifest is applied, fields it no longer sets are kept, and the annotation is rewritten', () => {
    const edited = deployment({
      template: { spec: { containers: [{ ...containers[0], image: 'busybox:2' }] } },
    });
    // With the annotation intact, replicas (set by the last apply, gone from the manifest) goes.
    assert.equal('replicas' in (threeWayMerge(liveAfterCreate(manifest), edited).merged as any).spec, false);

    const live: any = liveAfterCreate(manifest);
    live.metadata.annotations[LAST_APPLIED_ANNOTATION] = '{not json';
    const { changed, merged } = threeWayMerge(live, edited) as any;
    assert.equal(changed, true);
    assert.equal(merged.spec.template.spec.containers[0].image, 'busybox:2');
    // Without a record of the last apply, replicas may be someone else's: kept, as for an object
    // never applied.
    assert.equal(merged.spec.replicas, 2);
    assert.equal(merged.metadata.annotations[LAST_APPLIED_ANNOTATION], canonicalJson(edited));
    assert.equal(merged.metadata.resourceVersion, '7');
    assert.deepEqual(merged.status, { replicas: 2 });
    assert.equal(live.metadata.annotations[LAST_APPLIED_ANNOTATION], '{not json', 'live not modified');
  });

  test('labels removed from the manifest are removed, others kept', () => {
    const withLabels = (labels: Record<string, string>) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c', labels },
      data: {},
    });
    const live = liveAfterCreate(withLabels({ a: '1', b: '2' }), (o) => (o.metadata.labels.c = '3'));
    const { merged } = threeWayMerge(live, withLabels({ a: '1' })) as any;
    assert.deepEqual(merged.metadata.labels, { a: '1', c: '3' });
  });
});

test('resourceName prints kind.group/name as kubectl', () => {
  assert.equal(resourceName('Deployment', 'apps', 'web'), 'deployment.apps/web');
  assert.equal(resourceName('ConfigMap', '', 'cfg'), 'configmap/cfg');
});
