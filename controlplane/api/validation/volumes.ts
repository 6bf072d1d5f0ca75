/**
 * Pod volumes and how containers use them (volumeMounts, volumeDevices), as Kubernetes 1.32
 * validates them. Every volume source of core/v1 reads; emptyDir, hostPath, configMap, secret,
 * projected and downwardAPI are served, and each of the others is refused saying what it needs
 * that skiff does not have (a PersistentVolumeClaim, a CSI driver, a volume plugin).
 */
import type {
  Container,
  DownwardAPIVolumeFile,
  EphemeralContainer,
  KeyToPath,
  ProjectedVolumeSource,
  Volume,
} from '../../../proto/gen/types.js';
import { parseQuantity } from '../../../proto/quantity.js';
import {
  requireInRange,
  requireNonEmpty,
  requireSetOneOf,
  requireOneOf,
  requireValid,
  violation,
} from './field-violation.js';
import { checkConfigKey, checkDns1123Label, checkDns1123Subdomain, checkQualifiedName } from './names.js';
import { validateLocalDescendingPath, validateLocalNonReservedPath } from './paths.js';

const HOST_PATH_TYPES = [
  '',
  'DirectoryOrCreate',
  'Directory',
  'FileOrCreate',
  'File',
  'Socket',
  'CharDevice',
  'BlockDevice',
];

/** The volume sources skiff serves, in the order an error lists them. */
const SERVED_SOURCES = ['emptyDir', 'hostPath', 'configMap', 'secret', 'projected', 'downwardAPI'] as const;

const NEEDS_PVC = 'the PersistentVolumeClaim kind, which skiff does not serve';
const plugin = (name: string): string =>
  `the ${name} volume plugin, which skiff does not have (Kubernetes has removed it or moved it to a CSI driver)`;

/** Every other volume source of core/v1, with what it needs that skiff does not have. */
const UNSERVED_SOURCES: Readonly<Record<string, string>> = {
  persistentVolumeClaim: NEEDS_PVC,
  ephemeral: `${NEEDS_PVC} (an ephemeral volume is a PersistentVolumeClaim made for the pod)`,
  csi: 'a CSI driver (the CSIDriver kind and its node plugin), which skiff does not serve',
  nfs: 'an NFS client in the node agent, which skiff does not have',
  image: 'the ImageVolume feature (alpha in Kubernetes 1.32), which skiff does not serve',
  gitRepo:
    'the deprecated gitRepo volume plugin, which skiff does not have: clone the repository into an emptyDir from an init container',
  iscsi: 'an iSCSI initiator in the node agent, which skiff does not have',
  fc: 'a Fibre Channel volume plugin, which skiff does not have',
  flexVolume: 'a FlexVolume driver, which skiff does not run',
  gcePersistentDisk: plugin('gcePersistentDisk'),
  awsElasticBlockStore: plugin('awsElasticBlockStore'),
  azureDisk: plugin('azureDisk'),
  azureFile: plugin('azureFile'),
  cinder: plugin('cinder'),
  vsphereVolume: plugin('vsphereVolume'),
  portworxVolume: plugin('portworxVolume'),
  photonPersistentDisk: plugin('photonPersistentDisk'),
  cephfs: plugin('cephfs'),
  rbd: plugin('rbd'),
  glusterfs: plugin('glusterfs'),
  quobyte: plugin('quobyte'),
  flocker: plugin('flocker'),
  scaleIO: plugin('scaleIO'),
  storageos: plugin('storageos'),
};

/** The downward API fields a volume file may hold, besides single labels and annotations. */
const VOLUME_FIELD_PATHS = [
  'metadata.name',
  'metadata.namespace',
  'metadata.labels',
  'metadata.annotations',
  'metadata.uid',
];
const RESOURCE_FIELD = /^(limits|requests)\.(cpu|memory|ephemeral-storage|hugepages-.+)$/;
/** Kubernetes' limits on a projected service account token's lifetime. */
const MIN_TOKEN_SECONDS = 10 * 60;
const MAX_TOKEN_SECONDS = 2 ** 32;

/** 0 to 0777, the permission bits of a projected file. */
function validateMode(path: string, mode: number | undefined): void {
  requireInRange(path, mode, 0, 0o777);
}

/** configMap and secret items: a data key and the relative file it becomes. */
function validateItems(
  path: string,
  items: KeyToPath[] | undefined,
  paths?: Set<string>,
  conflictAt?: string,
): void {
  (items ?? []).forEach((item, i) => {
    const at = `${path}.items[${i}]`;
    requireValid(`${at}.key`, item.key, checkConfigKey(item.key));
    validateLocalNonReservedPath(`${at}.path`, item.path);
    validateMode(`${at}.mode`, item.mode);
    noDuplicatePath(`${at}.path`, item.path, paths, conflictAt);
  });
}

function noDuplicatePath(
  path: string,
  file: string,
  paths: Set<string> | undefined,
  conflictAt?: string,
): void {
  if (paths === undefined) return;
  if (paths.has(file))
    violation(path, `"${file}" is also projected by another source${conflictAt ? ` of ${conflictAt}` : ''}`);
  paths.add(file);
}

/** One file of a downwardAPI volume or projection: a pod field or a container's resource. */
function validateDownwardApiFile(path: string, file: DownwardAPIVolumeFile): void {
  validateLocalNonReservedPath(`${path}.path`, file.path);
  if (file.path === '') violation(`${path}.path`, 'required: the file to write');
  if (file.fieldRef !== undefined && file.resourceFieldRef !== undefined) {
    violation(path, 'may set only one of fieldRef and resourceFieldRef');
  }
  if (file.fieldRef !== undefined) {
    const at = `${path}.fieldRef`;
    requireOneOf(`${at}.apiVersion`, file.fieldRef.apiVersion, ['v1']);
    const subscript = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(file.fieldRef.fieldPath);
    if (subscript !== null) requireValid(`${at}.fieldPath`, subscript[2]!, checkQualifiedName(subscript[2]!));
    else
      requireOneOf(`${at}.fieldPath`, file.fieldRef.fieldPath, [
        ...VOLUME_FIELD_PATHS,
        "metadata.labels['<key>']",
        "metadata.annotations['<key>']",
      ]);
  } else if (file.resourceFieldRef !== undefined) {
    const at = `${path}.resourceFieldRef`;
    requireNonEmpty(
      `${at}.containerName`,
      file.resourceFieldRef.containerName,
      'the container whose resources the file holds',
    );
    if (!RESOURCE_FIELD.test(file.resourceFieldRef.resource)) {
      violation(
        `${at}.resource`,
        `unsupported value "${file.resourceFieldRef.resource}": must be limits.<resource> or requests.<resource> for cpu, memory, ephemeral-storage or hugepages-<size>`,
      );
    }
    if (file.resourceFieldRef.divisor) {
      if (parseQuantity(file.resourceFieldRef.divisor, `${at}.divisor`).milli <= 0n)
        violation(`${at}.divisor`, 'must be positive');
    }
  } else {
    violation(path, 'must specify one of fieldRef and resourceFieldRef');
  }
  validateMode(`${path}.mode`, file.mode);
}

function validateProjected(
  path: string,
  projected: ProjectedVolumeSource,
  isPod: boolean,
  serviceAccountName: string | undefined,
): void {
  validateMode(`${path}.defaultMode`, projected.defaultMode);
  const paths = new Set<string>();
  (projected.sources ?? []).forEach((source, i) => {
    const at = `${path}.sources[${i}]`;
    const set = Object.entries({
      secret: source.secret !== undefined,
      configMap: source.configMap !== undefined,
      downwardAPI: source.downwardAPI !== undefined,
      serviceAccountToken: source.serviceAccountToken !== undefined,
      clusterTrustBundle: source.clusterTrustBundle !== undefined,
    })
      .filter(([, isSet]) => isSet)
      .map(([name]) => name);
    if (set.length > 1) violation(at, `may specify only one source, found ${set.join(' and ')}`);
    for (const kind of ['secret', 'configMap'] as const) {
      const ref = source[kind];
      if (ref === undefined) continue;
      const name = requireNonEmpty(
        `${at}.${kind}.name`,
        ref.name,
        `the name of the ${kind === 'secret' ? 'Secret' : 'ConfigMap'} to project`,
      );
      requireValid(`${at}.${kind}.name`, name, checkDns1123Subdomain(name));
      validateItems(`${at}.${kind}`, ref.items, paths, path);
    }
    (source.downwardAPI?.items ?? []).forEach((file, j) => {
      const fileAt = `${at}.downwardAPI.items[${j}]`;
      validateDownwardApiFile(fileAt, file);
      noDuplicatePath(`${fileAt}.path`, file.path, paths, path);
    });
    const token = source.serviceAccountToken;
    if (token !== undefined) {
      const tokenAt = `${at}.serviceAccountToken`;
      requireInRange(
        `${tokenAt}.expirationSeconds`,
        token.expirationSeconds,
        MIN_TOKEN_SECONDS,
        MAX_TOKEN_SECONDS,
      );
      if (token.path === '') violation(`${tokenAt}.path`, 'required: the file the token is written to');
      validateLocalNonReservedPath(`${tokenAt}.path`, token.path);
      noDuplicatePath(`${tokenAt}.path`, token.path, paths, path);
      if (isPod && !serviceAccountName) {
        violation(tokenAt, 'may not be set when spec.serviceAccountName is empty');
      }
    }
    if (source.clusterTrustBundle !== undefined) {
      violation(
        `${at}.clusterTrustBundle`,
        'clusterTrustBundle projections need the ClusterTrustBundle kind (certificates.k8s.io), which skiff does not serve',
      );
    }
  });
}

export interface VolumeRules {
  /** A Pod (not a pod template): the pod-only rules apply. */
  isPod: boolean;
  /** The pod's serviceAccountName, which a projected token is issued for. */
  serviceAccountName: string | undefined;
}

export function validateVolume(path: string, volume: Volume, rules: VolumeRules): void {
  requireValid(`${path}.name`, volume.name, checkDns1123Label(volume.name));
  const sources = Object.keys(volume).filter(
    (key) => key !== 'name' && volume[key as keyof Volume] !== undefined,
  );
  if (sources.length === 0)
    violation(path, `must specify a volume source: one of ${SERVED_SOURCES.join(', ')}`);
  if (sources.length > 1)
    violation(path, `may specify only one volume source, found ${sources.join(' and ')}`);
  const source = sources[0]!;
  const needs = UNSERVED_SOURCES[source];
  if (needs !== undefined) violation(`${path}.${source}`, `${source} volumes need ${needs}`);

  if (volume.emptyDir) {
    requireOneOf(`${path}.emptyDir.medium`, volume.emptyDir.medium, ['Memory']);
    if (volume.emptyDir.sizeLimit) {
      const at = `${path}.emptyDir.sizeLimit`;
      if (parseQuantity(volume.emptyDir.sizeLimit, at).milli < 0n) violation(at, 'must not be negative');
    }
  }
  if (volume.hostPath) {
    if (!volume.hostPath.path.startsWith('/'))
      violation(`${path}.hostPath.path`, `"${volume.hostPath.path}" must be an absolute path`);
    if (volume.hostPath.path.split('/').includes('..'))
      violation(`${path}.hostPath.path`, `"${volume.hostPath.path}" must not contain '..'`);
    requireOneOf(`${path}.hostPath.type`, volume.hostPath.type, HOST_PATH_TYPES);
  }
  const object = volume.configMap
    ? { at: `${path}.configMap`, nameField: 'name', name: volume.configMap.name, source: volume.configMap }
    : volume.secret
      ? {
          at: `${path}.secret`,
          nameField: 'secretName',
          name: volume.secret.secretName,
          source: volume.secret,
        }
      : undefined;
  if (object) {
    const nameAt = `${object.at}.${object.nameField}`;
    requireValid(
      nameAt,
      requireNonEmpty(nameAt, object.name, 'the name of the object to project'),
      checkDns1123Subdomain(object.name ?? ''),
    );
    validateMode(`${object.at}.defaultMode`, object.source.defaultMode);
    validateItems(object.at, object.source.items);
  }
  if (volume.downwardAPI) {
    validateMode(`${path}.downwardAPI.defaultMode`, volume.downwardAPI.defaultMode);
    const paths = new Set<string>();
    (volume.downwardAPI.items ?? []).forEach((file, i) => {
      const at = `${path}.downwardAPI.items[${i}]`;
      validateDownwardApiFile(at, file);
      noDuplicatePath(`${at}.path`, file.path, paths);
    });
  }
  if (volume.projected) {
    validateProjected(`${path}.projected`, volume.projected, rules.isPod, rules.serviceAccountName);
  }
}

const MOUNT_PROPAGATIONS = ['None', 'HostToContainer', 'Bidirectional'];
const RECURSIVE_READ_ONLY = ['Disabled', 'IfPossible', 'Enabled'];

/**
 * A container's volumeMounts and volumeDevices against the pod's volumes. `ephemeral`: an
 * ephemeral container, which may not use subPath or subPathExpr.
 */
export function validateVolumeUse(
  path: string,
  container: Container | EphemeralContainer,
  volumeNames: ReadonlySet<string>,
  ephemeral: boolean,
): void {
  const mountPaths = new Set<string>();
  const devicePaths = new Set((container.volumeDevices ?? []).map((device) => device.devicePath));
  (container.volumeMounts ?? []).forEach((mount, i) => {
    const at = `${path}.volumeMounts[${i}]`;
    if (!volumeNames.has(mount.name)) {
      violation(`${at}.name`, `volume "${mount.name}" is not one of the pod's spec.volumes`);
    }
    if (!mount.mountPath.startsWith('/'))
      violation(`${at}.mountPath`, `"${mount.mountPath}" must be an absolute path`);
    if (mountPaths.has(mount.mountPath))
      violation(`${at}.mountPath`, `"${mount.mountPath}" is already mounted in this container`);
    if (devicePaths.has(mount.mountPath))
      violation(
        `${at}.mountPath`,
        `"${mount.mountPath}" is also a devicePath in this container's volumeDevices`,
      );
    mountPaths.add(mount.mountPath);
    if (mount.subPath) validateLocalDescendingPath(`${at}.subPath`, mount.subPath);
    if (mount.subPathExpr) {
      if (mount.subPath) violation(`${at}.subPathExpr`, 'may not be set together with subPath');
      validateLocalDescendingPath(`${at}.subPathExpr`, mount.subPathExpr);
    }
    if (ephemeral) {
      if (mount.subPath) violation(`${at}.subPath`, 'may not be set for an ephemeral container');
      if (mount.subPathExpr) violation(`${at}.subPathExpr`, 'may not be set for an ephemeral container');
    }
    requireSetOneOf(`${at}.mountPropagation`, mount.mountPropagation, MOUNT_PROPAGATIONS);
    if (mount.mountPropagation === 'Bidirectional' && container.securityContext?.privileged !== true) {
      violation(
        `${at}.mountPropagation`,
        'Bidirectional mount propagation is available only to privileged containers (securityContext.privileged: true)',
      );
    }
    requireSetOneOf(`${at}.recursiveReadOnly`, mount.recursiveReadOnly, RECURSIVE_READ_ONLY);
    if (mount.recursiveReadOnly === 'IfPossible' || mount.recursiveReadOnly === 'Enabled') {
      if (!mount.readOnly)
        violation(`${at}.recursiveReadOnly`, `may be ${mount.recursiveReadOnly} only when readOnly is true`);
      if (mount.mountPropagation !== undefined && mount.mountPropagation !== 'None') {
        violation(
          `${at}.recursiveReadOnly`,
          `may be ${mount.recursiveReadOnly} only when mountPropagation is None or not set`,
        );
      }
    }
  });
  (container.volumeDevices ?? []).forEach((device, i) => {
    const at = `${path}.volumeDevices[${i}]`;
    if (!volumeNames.has(device.name)) {
      violation(`${at}.name`, `volume "${device.name}" is not one of the pod's spec.volumes`);
    }
    // Raw block devices come only from persistentVolumeClaim and ephemeral volumes, which are
    // refused above; so any volume a device names is one that cannot hold it.
    violation(
      `${at}.name`,
      `volume "${device.name}" is not a persistentVolumeClaim or ephemeral volume: raw block devices come only from those, which need ${NEEDS_PVC}`,
    );
  });
}
