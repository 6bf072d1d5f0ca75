/**
 * The Deployment controller rolls a Deployment's pods from one template to the next through
 * ReplicaSets, as Kubernetes' does: one ReplicaSet per template, named `<deployment>-<hash of the
 * template>` and selecting that hash (`pod-template-hash`), revisions in the
 * `deployment.kubernetes.io/revision` annotation.
 *
 *   reconcile(namespace/name):
 *     its ReplicaSets (claimed: adopted, released) ─► the new one (template equal) and the old
 *     paused, or only replicas changed ─► scale: the one active ReplicaSet, or all of them in
 *         proportion (a Deployment scaled mid-rollout)
 *     RollingUpdate ─► the new ReplicaSet grows while all pods ≤ replicas + maxSurge; the old
 *         shrink (unhealthy pods first, oldest ReplicaSet first) while available pods stay
 *         ≥ replicas - maxUnavailable (rollout-math.ts)
 *     Recreate ─► the old to 0, and once none of their pods is left, the new one to replicas
 *     ─► old ReplicaSets beyond revisionHistoryLimit deleted (empty ones, oldest first)
 *     ─► status: replicas, updated, ready, available, unavailable; conditions Available and
 *        Progressing (ProgressDeadlineExceeded when no progress for progressDeadlineSeconds)
 *
 * `skiff rollout undo` copies an old ReplicaSet's template into the Deployment; the controller
 * then finds that ReplicaSet as the new one and gives it the next revision.
 */
import { LeaderController, type LeaderControllerOptions } from '../support/leader-controller.js';
import { isDeepStrictEqual } from 'node:util';
import { AlreadyExistsError, ConflictError, NotFoundError, errorMessage } from '../../../proto/errors.js';
import type {
  Condition,
  Deployment,
  KubeObject,
  Pod,
  PodTemplateSpec,
  ReplicaSet,
} from '../../../proto/gen/types.js';
import type { Informer } from '../../../proto/informer/informer.js';
import type { ReconcileResult } from '../../../proto/informer/work-queue.js';
import { rfc3339Seconds } from '../../../proto/support/kube-time.js';
import { labelSelectorFromObject } from '../../api/selectors.js';
import { claimObjects, controllerRefOf, controllerReference } from '../support/claims.js';
import { NAMESPACE_INDEX, indexByNamespace } from '../support/indexes.js';
import { fenceposts, maxScaledDown, newReplicaSetReplicas } from './rollout-math.js';
import { templateHash } from '../support/template-hash.js';
import { normalized } from '../../api/object-lifecycle.js';

export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
export const DESIRED_REPLICAS_ANNOTATION = 'deployment.kubernetes.io/desired-replicas';
export const MAX_REPLICAS_ANNOTATION = 'deployment.kubernetes.io/max-replicas';
export const POD_TEMPLATE_HASH = 'pod-template-hash';

export interface DeploymentControllerOptions extends LeaderControllerOptions {
  deployments: Informer<Deployment>;
  replicaSets: Informer<ReplicaSet>;
  pods: Informer<Pod>;
}

interface Rollout {
  deployment: Deployment;
  newRS: ReplicaSet | undefined;
  oldRSs: ReplicaSet[];
  /** something was scaled or created in this reconcile */
  moved: boolean;
}

export class DeploymentController extends LeaderController {
  constructor(private readonly options: DeploymentControllerOptions) {
    super(options, 'deployment-controller');
    indexByNamespace(options.replicaSets);
    indexByNamespace(options.pods);
  }

  protected watch(): (() => void)[] {
    const { deployments, replicaSets, pods } = this.options;
    const removals = [
      deployments.onChange((key) => this.controller.enqueue(key)),
      replicaSets.onChange((key, change, lastKnown) => {
        const rs = change === 'deleted' ? lastKnown?.object : replicaSets.get(key)?.object;
        if (rs !== undefined) this.enqueueOwnerOf(rs);
      }),
      // Recreate waits for the old pods to be gone
      pods.onChange((_key, change, lastKnown) => {
        const rsRef =
          lastKnown && change === 'deleted' ? controllerRefOf(lastKnown.object, 'ReplicaSet') : undefined;
        if (rsRef === undefined) return;
        const rs = replicaSets.get(`${lastKnown!.object.metadata.namespace}/${rsRef.name}`)?.object;
        if (rs !== undefined) this.enqueueOwnerOf(rs);
      }),
    ];
    for (const cached of deployments.list()) this.controller.enqueue(cached.key);
    return removals;
  }

  private enqueueOwnerOf(rs: ReplicaSet): void {
    const namespace = rs.metadata.namespace ?? '';
    const ref = controllerRefOf(rs, 'Deployment');
    if (ref !== undefined) return this.controller.enqueue(`${namespace}/${ref.name}`);
    if (controllerRefOf(rs) !== undefined) return;
    for (const cached of this.options.deployments.list()) {
      const d = cached.object;
      if ((d.metadata.namespace ?? '') === namespace && selectorOf(d).matches(rs.metadata.labels))
        this.controller.enqueue(cached.key);
    }
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const deployment = this.options.deployments.get(key)?.object;
    if (deployment === undefined) return;
    const selector = selectorOf(deployment);
    if (selector.empty) {
      this.events.record(
        deployment,
        'Warning',
        'SelectingAll',
        'This deployment is selecting all pods. A non-empty selector is required.',
      );
      return;
    }
    const inNamespace = this.options.replicaSets
      .byIndex(NAMESPACE_INDEX, deployment.metadata.namespace ?? '')
      .map((cached) => cached.object);
    const owned = await claimObjects(this.options.handlers, deployment, selector, inNamespace);
    const rollout: Rollout = { deployment, ...splitNewAndOld(deployment, owned), moved: false };
    if (deployment.metadata.deletionTimestamp) return this.syncStatus(rollout);
    if (deployment.spec.paused || this.isScalingEvent(rollout)) {
      await this.scale(rollout);
      if (!deployment.spec.paused) await this.cleanUp(rollout);
      return this.syncStatus(rollout);
    }
    if (deployment.spec.strategy?.type === 'Recreate') await this.rolloutRecreate(rollout);
    else await this.rolloutRolling(rollout);
    await this.cleanUp(rollout);
    return this.syncStatus(rollout);
  }

  // ---------------------------------------------------------------------------------------------
  // strategies

  private async rolloutRolling(rollout: Rollout): Promise<void> {
    const { deployment } = rollout;
    const replicas = desiredOf(deployment);
    const { surge, unavailable } = this.fenceposts(deployment);
    const newRS = await this.ensureNewReplicaSet(rollout, () =>
      newReplicaSetReplicas({
        replicas,
        surge,
        allReplicas: sumOf(rollout.oldRSs, specReplicas),
        newReplicas: 0,
      }),
    );
    const all = [newRS, ...rollout.oldRSs];
    const target = newReplicaSetReplicas({
      replicas,
      surge,
      allReplicas: sumOf(all, specReplicas),
      newReplicas: specReplicas(newRS),
    });
    if (target !== specReplicas(newRS)) {
      await this.scaleReplicaSet(rollout, newRS, target);
      return;
    }
    if (sumOf(rollout.oldRSs, specReplicas) === 0) return;
    let budget = maxScaledDown({
      replicas,
      unavailable,
      allReplicas: sumOf(all, specReplicas),
      newReplicas: specReplicas(newRS),
      newAvailable: newRS.status?.availableReplicas ?? 0,
    });
    if (budget <= 0) return;
    const oldest = [...rollout.oldRSs].sort(byCreation);
    // pods that are not available go first: they cost no availability
    for (const rs of oldest) {
      if (budget <= 0) break;
      const unhealthy = specReplicas(rs) - (rs.status?.availableReplicas ?? 0);
      if (specReplicas(rs) === 0 || unhealthy <= 0) continue;
      const down = Math.min(budget, unhealthy);
      await this.scaleReplicaSet(rollout, rs, specReplicas(rs) - down);
      budget -= down;
    }
    // then available ones, as far as availability allows
    const minAvailable = replicas - unavailable;
    // a ReplicaSet just scaled down may still report the pods it is deleting as available (its
    // status is written from the pods it counted before the deletions, or not yet at all): it
    // will keep no more than its replicas, so no more count, or a second scale-down would take
    // availability below minAvailable
    const available = sumOf([newRS, ...rollout.oldRSs], (rs) =>
      Math.min(rs.status?.availableReplicas ?? 0, specReplicas(rs)),
    );
    let toScaleDown = available - minAvailable;
    for (const rs of oldest) {
      if (toScaleDown <= 0) break;
      if (specReplicas(rs) === 0) continue;
      const down = Math.min(specReplicas(rs), toScaleDown);
      await this.scaleReplicaSet(rollout, rs, specReplicas(rs) - down);
      toScaleDown -= down;
    }
  }

  private async rolloutRecreate(rollout: Rollout): Promise<void> {
    for (const rs of rollout.oldRSs) if (specReplicas(rs) > 0) await this.scaleReplicaSet(rollout, rs, 0);
    if (rollout.moved) return;
    // the new pods start only once no old pod is left (running or terminating)
    const oldUids = new Set(rollout.oldRSs.map((rs) => rs.metadata.uid));
    const podsLeft = this.options.pods
      .byIndex(NAMESPACE_INDEX, rollout.deployment.metadata.namespace ?? '')
      .some((cached) => {
        const ref = controllerRefOf(cached.object, 'ReplicaSet');
        const phase = cached.object.status?.phase;
        return ref !== undefined && oldUids.has(ref.uid) && phase !== 'Succeeded' && phase !== 'Failed';
      });
    if (podsLeft) return;
    const newRS = await this.ensureNewReplicaSet(rollout, () => desiredOf(rollout.deployment));
    if (specReplicas(newRS) !== desiredOf(rollout.deployment))
      await this.scaleReplicaSet(rollout, newRS, desiredOf(rollout.deployment));
  }

  /** Paused or only replicas changed: resize without rolling. */
  private async scale(rollout: Rollout): Promise<void> {
    const { deployment, newRS, oldRSs } = rollout;
    const replicas = desiredOf(deployment);
    const all = [...(newRS ? [newRS] : []), ...oldRSs];
    const active = all.filter((rs) => specReplicas(rs) > 0);
    if (active.length <= 1) {
      // the one active ReplicaSet, or the latest when none is
      const target = active[0] ?? newRS ?? [...oldRSs].sort(byCreation).at(-1);
      if (target !== undefined && specReplicas(target) !== replicas)
        await this.scaleReplicaSet(rollout, target, replicas);
      return;
    }
    if (newRS && specReplicas(newRS) === replicas && (newRS.status?.availableReplicas ?? 0) === replicas) {
      for (const rs of oldRSs) if (specReplicas(rs) > 0) await this.scaleReplicaSet(rollout, rs, 0);
      return;
    }
    // mid-rollout: every active ReplicaSet grows or shrinks in proportion to its size, the
    // rounding left over to the largest (the newest first among equals), within replicas + surge
    const { surge } = this.fenceposts(deployment);
    const current = sumOf(active, specReplicas);
    const allowed = deployment.spec.strategy?.type === 'Recreate' ? replicas : replicas + surge;
    const delta = allowed - current;
    if (delta === 0) return;
    const ordered = [...active].sort((a, b) => specReplicas(b) - specReplicas(a) || byCreation(b, a));
    const shares = ordered.map((rs) => Math.trunc((specReplicas(rs) * delta) / current));
    shares[0]! += delta - shares.reduce((sum, n) => sum + n, 0);
    for (const [i, rs] of ordered.entries()) {
      const target = Math.max(0, specReplicas(rs) + shares[i]!);
      if (target !== specReplicas(rs)) await this.scaleReplicaSet(rollout, rs, target);
    }
  }

  private isScalingEvent(rollout: Rollout): boolean {
    const replicas = String(desiredOf(rollout.deployment));
    return [...(rollout.newRS ? [rollout.newRS] : []), ...rollout.oldRSs].some(
      (rs) =>
        specReplicas(rs) > 0 &&
        rs.metadata.annotations?.[DESIRED_REPLICAS_ANNOTATION] !== undefined &&
        rs.metadata.annotations[DESIRED_REPLICAS_ANNOTATION] !== replicas,
    );
  }

  // ---------------------------------------------------------------------------------------------
  // ReplicaSets

  /** The ReplicaSet of the current template, created with `initialReplicas()` when missing. */
  private async ensureNewReplicaSet(rollout: Rollout, initialReplicas: () => number): Promise<ReplicaSet> {
    const { deployment, oldRSs } = rollout;
    const revision = String(Math.max(0, ...oldRSs.map(revisionOf)) + 1);
    if (rollout.newRS !== undefined) {
      if (
        rollout.newRS.metadata.annotations?.[REVISION_ANNOTATION] !== revision &&
        revisionOf(rollout.newRS) < Number(revision)
      ) {
        // a rollback to this template: it becomes the latest revision
        rollout.newRS = await this.annotate(rollout.newRS, deployment, revision);
      }
      await this.syncDeploymentRevision(deployment, revision);
      return rollout.newRS;
    }
    const template = deployment.spec.template ?? {};
    const hash = podTemplateHash(template, deployment.status?.collisionCount ?? 0);
    const labels = { ...template.metadata?.labels, [POD_TEMPLATE_HASH]: hash };
    const replicas = initialReplicas();
    const { surge } = this.fenceposts(deployment);
    const rs: ReplicaSet = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: `${deployment.metadata.name}-${hash}`,
        namespace: deployment.metadata.namespace ?? '',
        labels,
        annotations: {
          [REVISION_ANNOTATION]: revision,
          [DESIRED_REPLICAS_ANNOTATION]: String(desiredOf(deployment)),
          [MAX_REPLICAS_ANNOTATION]: String(desiredOf(deployment) + surge),
        },
        ownerReferences: [controllerReference(deployment)],
      },
      spec: {
        replicas,
        ...(deployment.spec.minReadySeconds ? { minReadySeconds: deployment.spec.minReadySeconds } : {}),
        selector: {
          ...deployment.spec.selector,
          matchLabels: { ...deployment.spec.selector?.matchLabels, [POD_TEMPLATE_HASH]: hash },
        },
        template: { ...template, metadata: { ...template.metadata, labels } },
      },
    };
    let created: ReplicaSet;
    try {
      created = (await this.options.handlers.create(rs)).object as ReplicaSet;
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) throw err;
      // a ReplicaSet of that name that is not this template's: count the collision so the next
      // reconcile hashes differently
      await this.options.handlers.updateStatus({
        ...deployment,
        status: { ...deployment.status, collisionCount: (deployment.status?.collisionCount ?? 0) + 1 },
      });
      throw new Error(`ReplicaSet ${rs.metadata.name} exists with another template; hashing again`);
    }
    this.events.record(
      deployment,
      'Normal',
      'ScalingReplicaSet',
      `Scaled up replica set ${created.metadata.name} to ${replicas}`,
    );
    rollout.newRS = created;
    rollout.moved = true;
    await this.syncDeploymentRevision(deployment, revision);
    return created;
  }

  private async scaleReplicaSet(rollout: Rollout, rs: ReplicaSet, replicas: number): Promise<void> {
    const { deployment } = rollout;
    const { surge } = this.fenceposts(deployment);
    const before = specReplicas(rs);
    const updated = (
      await this.options.handlers.update({
        ...rs,
        metadata: {
          ...rs.metadata,
          annotations: {
            ...rs.metadata.annotations,
            [DESIRED_REPLICAS_ANNOTATION]: String(desiredOf(deployment)),
            [MAX_REPLICAS_ANNOTATION]: String(desiredOf(deployment) + surge),
          },
        },
        spec: { ...rs.spec, replicas },
      })
    ).object as ReplicaSet;
    rollout.moved = true;
    if (rollout.newRS?.metadata.uid === rs.metadata.uid) rollout.newRS = updated;
    else rollout.oldRSs = rollout.oldRSs.map((old) => (old.metadata.uid === rs.metadata.uid ? updated : old));
    if (replicas !== before)
      this.events.record(
        deployment,
        'Normal',
        'ScalingReplicaSet',
        `Scaled ${replicas > before ? 'up' : 'down'} replica set ${rs.metadata.name} from ${before} to ${replicas}`,
      );
  }

  private async annotate(rs: ReplicaSet, deployment: Deployment, revision: string): Promise<ReplicaSet> {
    return (
      await this.options.handlers.update({
        ...rs,
        metadata: {
          ...rs.metadata,
          annotations: { ...rs.metadata.annotations, [REVISION_ANNOTATION]: revision },
        },
      })
    ).object as ReplicaSet;
  }

  private async syncDeploymentRevision(deployment: Deployment, revision: string): Promise<void> {
    if (deployment.metadata.annotations?.[REVISION_ANNOTATION] === revision) return;
    await this.options.handlers.update({
      ...deployment,
      metadata: {
        ...deployment.metadata,
        annotations: { ...deployment.metadata.annotations, [REVISION_ANNOTATION]: revision },
      },
    });
  }

  /** Deletes empty old ReplicaSets beyond revisionHistoryLimit, oldest first. */
  private async cleanUp(rollout: Rollout): Promise<void> {
    const limit = rollout.deployment.spec.revisionHistoryLimit ?? 10;
    const empty = rollout.oldRSs
      .filter(
        (rs) => specReplicas(rs) === 0 && (rs.status?.replicas ?? 0) === 0 && !rs.metadata.deletionTimestamp,
      )
      .sort((a, b) => revisionOf(a) - revisionOf(b) || byCreation(a, b));
    for (const rs of empty.slice(0, Math.max(0, rollout.oldRSs.length - limit))) {
      try {
        await this.options.handlers.delete(
          'ReplicaSet',
          rs.metadata.namespace ?? '',
          rs.metadata.name ?? '',
          {
            preconditions: { uid: rs.metadata.uid ?? '' },
          },
        );
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // status

  private async syncStatus(rollout: Rollout): Promise<ReconcileResult> {
    const { deployment, newRS, oldRSs } = rollout;
    const all = [...(newRS ? [newRS] : []), ...oldRSs];
    const replicas = desiredOf(deployment);
    const now = this.clock.now();
    const stamp = rfc3339Seconds(new Date(now));
    const counts = {
      observedGeneration: deployment.metadata.generation ?? 0,
      replicas: sumOf(all, (rs) => rs.status?.replicas ?? 0),
      updatedReplicas: newRS?.status?.replicas ?? 0,
      readyReplicas: sumOf(all, (rs) => rs.status?.readyReplicas ?? 0),
      availableReplicas: sumOf(all, (rs) => rs.status?.availableReplicas ?? 0),
      unavailableReplicas: Math.max(0, replicas - sumOf(all, (rs) => rs.status?.availableReplicas ?? 0)),
      collisionCount: deployment.status?.collisionCount ?? 0,
    };
    const previous = deployment.status ?? {};
    const { unavailable } = this.fenceposts(deployment);
    const conditions = new Map((previous.conditions ?? []).map((c) => [c.type, c]));
    const setCondition = (next: Condition, progressed = false): void => {
      const before = conditions.get(next.type);
      const same = before?.status === next.status && before.reason === next.reason;
      conditions.set(next.type, {
        ...next,
        lastTransitionTime: same ? (before?.lastTransitionTime ?? stamp) : stamp,
        lastUpdateTime: same && !progressed ? (before?.lastUpdateTime ?? stamp) : stamp,
      });
    };
    setCondition(
      counts.availableReplicas >= replicas - unavailable
        ? {
            type: 'Available',
            status: 'True',
            reason: 'MinimumReplicasAvailable',
            message: 'Deployment has minimum availability.',
          }
        : {
            type: 'Available',
            status: 'False',
            reason: 'MinimumReplicasUnavailable',
            message: 'Deployment does not have minimum availability.',
          },
    );
    const complete =
      newRS !== undefined &&
      counts.updatedReplicas === replicas &&
      counts.replicas === replicas &&
      counts.availableReplicas === replicas &&
      specReplicas(newRS) === replicas;
    const rsName = newRS?.metadata.name ?? deployment.metadata.name;
    const deadlineSeconds = deployment.spec.progressDeadlineSeconds;
    let requeueAfterMs: number | undefined;
    if (deployment.spec.paused) {
      setCondition({
        type: 'Progressing',
        status: 'Unknown',
        reason: 'DeploymentPaused',
        message: 'Deployment is paused',
      });
    } else if (complete) {
      setCondition({
        type: 'Progressing',
        status: 'True',
        reason: 'NewReplicaSetAvailable',
        message: `ReplicaSet "${rsName}" has successfully progressed.`,
      });
    } else {
      const progressed =
        rollout.moved ||
        counts.updatedReplicas !== (previous.updatedReplicas ?? 0) ||
        counts.readyReplicas !== (previous.readyReplicas ?? 0) ||
        counts.availableReplicas !== (previous.availableReplicas ?? 0) ||
        counts.replicas !== (previous.replicas ?? 0);
      const current = conditions.get('Progressing');
      const since = current?.lastUpdateTime ? Date.parse(current.lastUpdateTime) : now;
      if (
        progressed ||
        current === undefined ||
        current.reason === 'NewReplicaSetAvailable' ||
        current.reason === 'DeploymentPaused'
      ) {
        setCondition(
          {
            type: 'Progressing',
            status: 'True',
            reason:
              rollout.moved && current?.reason !== 'ReplicaSetUpdated'
                ? 'NewReplicaSetCreated'
                : 'ReplicaSetUpdated',
            message: `ReplicaSet "${rsName}" is progressing.`,
          },
          true,
        );
        if (deadlineSeconds !== undefined) requeueAfterMs = deadlineSeconds * 1000 + 1000;
      } else if (
        deadlineSeconds !== undefined &&
        current.status === 'True' &&
        now - since > deadlineSeconds * 1000
      ) {
        setCondition({
          type: 'Progressing',
          status: 'False',
          reason: 'ProgressDeadlineExceeded',
          message: `ReplicaSet "${rsName}" has timed out progressing.`,
        });
        this.events.record(
          deployment,
          'Warning',
          'ProgressDeadlineExceeded',
          `Deployment "${deployment.metadata.name}" has timed out progressing.`,
        );
      } else if (deadlineSeconds !== undefined && current.status === 'True') {
        requeueAfterMs = Math.max(0, since + deadlineSeconds * 1000 - now) + 1000;
      }
    }
    const status = {
      ...Object.fromEntries(Object.entries(counts).filter(([, value]) => value !== 0)),
      conditions: [...conditions.values()],
    };
    if (
      !isDeepStrictEqual(withoutTimes(previous), withoutTimes(status)) ||
      conditionsMoved(previous.conditions, status.conditions)
    ) {
      try {
        await this.options.handlers.updateStatus({ ...deployment, status });
      } catch (err) {
        if (err instanceof NotFoundError) return;
        // changed since the cached copy: the newer one brings another reconcile
        if (!(err instanceof ConflictError)) throw err;
      }
    }
    return requeueAfterMs !== undefined ? { requeueAfterMs } : undefined;
  }

  private fenceposts(deployment: Deployment): { surge: number; unavailable: number } {
    if (deployment.spec.strategy?.type === 'Recreate')
      return { surge: 0, unavailable: desiredOf(deployment) };
    try {
      const rolling = deployment.spec.strategy?.rollingUpdate;
      return fenceposts(rolling?.maxSurge ?? '25%', rolling?.maxUnavailable ?? '25%', desiredOf(deployment));
    } catch (err) {
      throw new Error(
        `deployment ${deployment.metadata.namespace}/${deployment.metadata.name}: ${errorMessage(err)}`,
      );
    }
  }
}

function selectorOf(deployment: Deployment) {
  return labelSelectorFromObject(deployment.spec.selector, 'spec.selector');
}

function desiredOf(deployment: Deployment): number {
  return deployment.spec.replicas ?? 1;
}

function specReplicas(rs: ReplicaSet): number {
  return rs.spec.replicas ?? 1;
}

function revisionOf(rs: ReplicaSet): number {
  const revision = Number(rs.metadata.annotations?.[REVISION_ANNOTATION] ?? 0);
  return Number.isFinite(revision) ? revision : 0;
}

function sumOf<T>(items: readonly T[], value: (item: T) => number): number {
  return items.reduce((sum, item) => sum + value(item), 0);
}

function byCreation(a: KubeObject, b: KubeObject): number {
  return (
    (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') ||
    (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '')
  );
}

/** The template without the hash label the ReplicaSet adds, for comparing with the Deployment's. */
function withoutHash(template: PodTemplateSpec | undefined): PodTemplateSpec {
  const labels = { ...template?.metadata?.labels };
  delete labels[POD_TEMPLATE_HASH];
  return { ...template, metadata: { ...template?.metadata, labels } };
}

/** A short name-safe hash of the template (and the collision count), as pod-template-hash. */
export function podTemplateHash(template: PodTemplateSpec, collisionCount: number): string {
  return templateHash(withoutHash(template), collisionCount);
}

/** The ReplicaSet whose template is the Deployment's (the newest such), and the rest. */
function splitNewAndOld(
  deployment: Deployment,
  owned: ReplicaSet[],
): { newRS: ReplicaSet | undefined; oldRSs: ReplicaSet[] } {
  const wanted = normalized(withoutHash(deployment.spec.template));
  const matching = owned
    .filter((rs) => isDeepStrictEqual(normalized(withoutHash(rs.spec.template)), wanted))
    .sort(byCreation);
  const newRS = matching[0];
  return { newRS, oldRSs: owned.filter((rs) => rs !== newRS) };
}

function withoutTimes(status: Deployment['status']): unknown {
  return {
    ...status,
    conditions: (status?.conditions ?? []).map(
      ({ lastUpdateTime: _u, lastTransitionTime: _t, ...rest }) => rest,
    ),
  };
}

/** A condition's times moved only when it progressed; those writes count too. */
function conditionsMoved(before: Condition[] | undefined, after: Condition[]): boolean {
  const previous = new Map((before ?? []).map((c) => [c.type, c]));
  return after.some((c) => previous.get(c.type)?.lastUpdateTime !== c.lastUpdateTime);
}
