/**
 * Security contexts, of the pod and of each container, and the rules that depend on the pod's
 * operating system (spec.os) — as Kubernetes 1.32 validates them. What only a Windows node acts on
 * (windowsOptions) and what only an SELinux node acts on (seLinuxOptions) is accepted and stored;
 * a Linux node ignores it, as a Linux kubelet does.
 */
import type {
  AppArmorProfile,
  Container,
  PodSecurityContext,
  PodSpec,
  SeccompProfile,
  SecurityContext,
  WindowsSecurityContextOptions,
} from '../../../proto/gen/types.js';
import { requireInRange, requireOneOf, requireSetOneOf, requireValid, violation } from './field-violation.js';
import { checkDns1123Subdomain } from './names.js';
import { validateLocalDescendingPath } from './paths.js';

/** Kubernetes' IsValidUserID / IsValidGroupID: 0 to 2^31 - 1. */
const MAX_ID = 2 ** 31 - 1;
const PROFILE_TYPES = ['RuntimeDefault', 'Unconfined', 'Localhost'];
const SYSCTL_NAME = /^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$/;
/**
 * Sysctls in the network and IPC namespaces (as Kubernetes sorts them, names with '.'), which a pod
 * sharing the host's may not set: they would change the host's.
 */
const NET_SYSCTL = /^net\./;
const IPC_SYSCTL = /^(kernel\.sem$|kernel\.shm|kernel\.msg|fs\.mqueue\.)/;
const MAX_GMSA_CREDENTIAL_SPEC_BYTES = 64 * 1024;

function validateId(path: string, value: number | undefined): void {
  requireInRange(path, value, 0, MAX_ID);
}

/** A seccomp or AppArmor profile: Localhost needs localhostProfile, the others must not have one. */
function validateProfile(
  path: string,
  profile: SeccompProfile | AppArmorProfile | undefined,
  what: 'seccomp' | 'AppArmor',
): void {
  if (profile === undefined) return;
  requireOneOf(`${path}.type`, profile.type, PROFILE_TYPES);
  const local = profile.localhostProfile;
  if (profile.type !== 'Localhost') {
    if (local !== undefined)
      violation(`${path}.localhostProfile`, `may be set only when the ${what} type is Localhost`);
    return;
  }
  if (local === undefined || local.trim() === '')
    violation(`${path}.localhostProfile`, `required when the ${what} type is Localhost`);
  if (what === 'seccomp') validateLocalDescendingPath(`${path}.localhostProfile`, local);
  else {
    if (local.trim() !== local) violation(`${path}.localhostProfile`, 'must not be padded with whitespace');
    if (local.length > 4095) violation(`${path}.localhostProfile`, 'must be no more than 4095 characters');
  }
}

/**
 * windowsOptions: checked as Kubernetes checks them, then ignored on Linux nodes (they configure
 * Windows containers only).
 */
function validateWindowsOptions(path: string, options: WindowsSecurityContextOptions | undefined): void {
  if (options === undefined) return;
  if (options.gmsaCredentialSpecName !== undefined) {
    requireValid(
      `${path}.gmsaCredentialSpecName`,
      options.gmsaCredentialSpecName,
      checkDns1123Subdomain(options.gmsaCredentialSpecName),
    );
  }
  const spec = options.gmsaCredentialSpec;
  if (spec !== undefined) {
    if (spec === '') violation(`${path}.gmsaCredentialSpec`, 'must not be empty when set');
    if (Buffer.byteLength(spec) > MAX_GMSA_CREDENTIAL_SPEC_BYTES)
      violation(`${path}.gmsaCredentialSpec`, 'must be under 64 KiB');
  }
  const userName = options.runAsUserName;
  if (userName === undefined) return;
  const at = `${path}.runAsUserName`;
  if (userName === '') violation(at, 'must not be empty when set');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(userName)) violation(at, 'must not contain control characters');
  const parts = userName.split('\\');
  if (parts.length > 2) violation(at, `"${userName}" must not contain more than one backslash`);
  const [domain, user] = parts.length === 2 ? [parts[0]!, parts[1]!] : [undefined, parts[0]!];
  if (domain !== undefined) {
    if (domain.length >= 256) violation(at, 'the domain must be under 256 characters');
    const netBios = /^[^\\/:*?"<>|.][^\\/:*?"<>|]{0,14}$/;
    const dns =
      /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
    if (!netBios.test(domain) && !dns.test(domain))
      violation(at, `the domain "${domain}" is neither a NetBIOS nor a DNS name`);
  }
  if (user === '') violation(at, 'the user must not be empty');
  if (user.length > 104) violation(at, 'the user must be no more than 104 characters');
  if (/^[. ]+$/.test(user)) violation(at, 'the user must not be only periods or spaces');
  if (/["/\\:;|=,+*?<>@[\]]/.test(user))
    violation(at, 'the user must not contain any of the characters "/\\:;|=,+*?<>@[]');
}

/** The pod's securityContext (and the pod fields Kubernetes keeps beside it: host namespaces). */
export function validatePodSecurityContext(path: string, spec: PodSpec): void {
  const context: PodSecurityContext | undefined = spec.securityContext;
  const at = `${path}.securityContext`;
  if (spec.shareProcessNamespace && spec.hostPID) {
    violation(`${path}.shareProcessNamespace`, 'may not be true together with hostPID');
  }
  if (spec.hostUsers === false) {
    for (const field of ['hostNetwork', 'hostPID', 'hostIPC'] as const) {
      if (spec[field]) violation(`${path}.${field}`, 'may not be true when hostUsers is false');
    }
  }
  if (context === undefined) return;
  validateId(`${at}.runAsUser`, context.runAsUser);
  validateId(`${at}.runAsGroup`, context.runAsGroup);
  validateId(`${at}.fsGroup`, context.fsGroup);
  (context.supplementalGroups ?? []).forEach((group, i) =>
    validateId(`${at}.supplementalGroups[${i}]`, group),
  );
  const sysctlNames = new Set<string>();
  (context.sysctls ?? []).forEach((sysctl, i) => {
    const name = `${at}.sysctls[${i}].name`;
    if (sysctl.name.length > 253 || !SYSCTL_NAME.test(sysctl.name)) {
      violation(name, `"${sysctl.name}" is not a sysctl name such as net.core.somaxconn`);
    }
    if (sysctlNames.has(sysctl.name)) violation(name, `duplicate sysctl "${sysctl.name}"`);
    sysctlNames.add(sysctl.name);
    const dotted = sysctl.name.replaceAll('/', '.');
    if (spec.hostNetwork && NET_SYSCTL.test(dotted))
      violation(name, `"${sysctl.name}" may not be set when hostNetwork is true`);
    if (spec.hostIPC && IPC_SYSCTL.test(dotted))
      violation(name, `"${sysctl.name}" may not be set when hostIPC is true`);
  });
  requireSetOneOf(`${at}.fsGroupChangePolicy`, context.fsGroupChangePolicy, ['OnRootMismatch', 'Always']);
  requireSetOneOf(`${at}.supplementalGroupsPolicy`, context.supplementalGroupsPolicy, ['Merge', 'Strict']);
  requireSetOneOf(`${at}.seLinuxChangePolicy`, context.seLinuxChangePolicy, ['Recursive', 'MountOption']);
  validateProfile(`${at}.seccompProfile`, context.seccompProfile, 'seccomp');
  validateProfile(`${at}.appArmorProfile`, context.appArmorProfile, 'AppArmor');
  validateWindowsOptions(`${at}.windowsOptions`, context.windowsOptions);
}

/** A container's securityContext; `hostUsers` is the pod's (false: a user namespace of its own). */
export function validateContainerSecurityContext(
  path: string,
  context: SecurityContext | undefined,
  hostUsers: boolean,
): void {
  if (context === undefined) return;
  validateId(`${path}.runAsUser`, context.runAsUser);
  validateId(`${path}.runAsGroup`, context.runAsGroup);
  if (context.allowPrivilegeEscalation === false) {
    if (context.privileged)
      violation(`${path}.allowPrivilegeEscalation`, 'cannot be false when privileged is true');
    if ((context.capabilities?.add ?? []).includes('CAP_SYS_ADMIN')) {
      violation(
        `${path}.allowPrivilegeEscalation`,
        'cannot be false when capabilities.add has CAP_SYS_ADMIN',
      );
    }
  }
  if (context.runAsNonRoot && context.runAsUser === 0) {
    violation(`${path}.runAsUser`, 'cannot be 0 (root) when runAsNonRoot is true');
  }
  for (const part of ['add', 'drop'] as const) {
    (context.capabilities?.[part] ?? []).forEach((capability, i) => {
      if (!/^(CAP_)?[A-Z_]+$/.test(capability)) {
        violation(
          `${path}.capabilities.${part}[${i}]`,
          `"${capability}" is not a capability name such as NET_BIND_SERVICE or ALL`,
        );
      }
    });
  }
  requireSetOneOf(`${path}.procMount`, context.procMount, ['Default', 'Unmasked']);
  if (context.procMount === 'Unmasked' && hostUsers) {
    violation(`${path}.procMount`, 'may be Unmasked only when the pod sets hostUsers: false');
  }
  validateProfile(`${path}.seccompProfile`, context.seccompProfile, 'seccomp');
  validateProfile(`${path}.appArmorProfile`, context.appArmorProfile, 'AppArmor');
  validateWindowsOptions(`${path}.windowsOptions`, context.windowsOptions);
}

/** Every container of the spec (init, regular, ephemeral) with its path. */
export function containersWithPaths(
  path: string,
  spec: PodSpec,
): [string, Pick<Container, 'securityContext'>][] {
  const all: [string, Pick<Container, 'securityContext'>][] = [];
  for (const field of ['initContainers', 'containers', 'ephemeralContainers'] as const) {
    (spec[field] ?? []).forEach((container, i) => all.push([`${path}.${field}[${i}]`, container]));
  }
  return all;
}

const WINDOWS_FORBIDDEN_POD_FIELDS = [
  'appArmorProfile',
  'seLinuxOptions',
  'seccompProfile',
  'fsGroup',
  'fsGroupChangePolicy',
  'sysctls',
  'runAsUser',
  'runAsGroup',
  'supplementalGroups',
  'supplementalGroupsPolicy',
  'seLinuxChangePolicy',
] as const;

const WINDOWS_FORBIDDEN_CONTAINER_FIELDS = [
  'appArmorProfile',
  'seLinuxOptions',
  'seccompProfile',
  'capabilities',
  'readOnlyRootFilesystem',
  'privileged',
  'allowPrivilegeEscalation',
  'procMount',
  'runAsUser',
  'runAsGroup',
] as const;

/**
 * spec.os: linux or windows. A pod that says linux may not carry Windows options; a pod that says
 * windows may not carry what only Linux has. Without spec.os both are accepted, and each node
 * uses what applies to it.
 */
export function validatePodOs(path: string, spec: PodSpec): void {
  validateHostProcess(path, spec);
  const os = spec.os;
  if (os === undefined) return;
  requireOneOf(`${path}.os.name`, os.name, ['linux', 'windows']);
  const containers = containersWithPaths(path, spec);
  if (os.name === 'linux') {
    if (spec.securityContext?.windowsOptions !== undefined)
      violation(`${path}.securityContext.windowsOptions`, 'may not be set for a linux pod (spec.os.name)');
    for (const [at, container] of containers) {
      if (container.securityContext?.windowsOptions !== undefined)
        violation(`${at}.securityContext.windowsOptions`, 'may not be set for a linux pod (spec.os.name)');
    }
    return;
  }
  const context = spec.securityContext;
  for (const field of WINDOWS_FORBIDDEN_POD_FIELDS) {
    if (context?.[field] !== undefined)
      violation(`${path}.securityContext.${field}`, 'may not be set for a windows pod (spec.os.name)');
  }
  for (const field of ['hostUsers', 'shareProcessNamespace'] as const) {
    if (spec[field] !== undefined)
      violation(`${path}.${field}`, 'may not be set for a windows pod (spec.os.name)');
  }
  for (const field of ['hostPID', 'hostIPC'] as const) {
    if (spec[field]) violation(`${path}.${field}`, 'may not be set for a windows pod (spec.os.name)');
  }
  for (const [at, container] of containers) {
    for (const field of WINDOWS_FORBIDDEN_CONTAINER_FIELDS) {
      if (container.securityContext?.[field] !== undefined)
        violation(`${at}.securityContext.${field}`, 'may not be set for a windows pod (spec.os.name)');
    }
  }
}

/** Windows HostProcess containers: all of the pod's or none, and only with the host's network. */
function validateHostProcess(path: string, spec: PodSpec): void {
  const podValue = spec.securityContext?.windowsOptions?.hostProcess;
  let hostProcess = 0;
  const containers = containersWithPaths(path, spec);
  for (const [at, container] of containers) {
    const own = container.securityContext?.windowsOptions?.hostProcess;
    if (podValue !== undefined && own !== undefined && own !== podValue) {
      violation(
        `${at}.securityContext.windowsOptions.hostProcess`,
        `must equal the pod's securityContext.windowsOptions.hostProcess (${podValue}) when both are set`,
      );
    }
    if (own ?? podValue) hostProcess++;
  }
  if (hostProcess === 0) return;
  if (hostProcess !== containers.length) {
    violation(path, 'if any container is a hostProcess container, all of them must be');
  }
  if (!spec.hostNetwork)
    violation(`${path}.hostNetwork`, 'must be true when the pod has hostProcess containers');
}
