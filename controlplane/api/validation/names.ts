/**
 * The syntax rules for names, as Kubernetes applies them (apimachinery's validation package):
 * DNS-1123 labels and subdomains, DNS-1035 labels, qualified names (label and annotation keys),
 * label values, IANA service (port) names, environment variable and config keys. Each `check*`
 * returns the reason the value is invalid, or undefined when it is valid.
 */
import { isIP } from 'node:net';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const ENV_VAR_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;

export const DNS1123_LABEL_MAX = 63;
export const DNS1123_SUBDOMAIN_MAX = 253;
export const LABEL_VALUE_MAX = 63;

export function checkDns1123Label(value: string): string | undefined {
  if (value.length > DNS1123_LABEL_MAX) return `must be no more than ${DNS1123_LABEL_MAX} characters`;
  if (!DNS1123_LABEL.test(value)) {
    return "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. 'my-name')";
  }
  return undefined;
}

export function checkDns1123Subdomain(value: string): string | undefined {
  if (value.length > DNS1123_SUBDOMAIN_MAX) return `must be no more than ${DNS1123_SUBDOMAIN_MAX} characters`;
  if (!DNS1123_SUBDOMAIN.test(value)) {
    return "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (e.g. 'example.com')";
  }
  return undefined;
}

export function checkDns1035Label(value: string): string | undefined {
  if (value.length > DNS1123_LABEL_MAX) return `must be no more than ${DNS1123_LABEL_MAX} characters`;
  if (!DNS1035_LABEL.test(value)) {
    return "must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit (e.g. 'my-name')";
  }
  return undefined;
}

/** Label, annotation and finalizer keys: `[prefix/]name`, prefix a DNS subdomain, name ≤ 63. */
export function checkQualifiedName(value: string): string | undefined {
  const parts = value.split('/');
  if (parts.length > 2)
    return "must be a qualified name: an optional DNS subdomain prefix and '/', then a name";
  const name = parts[parts.length - 1]!;
  if (parts.length === 2) {
    const prefix = parts[0]!;
    if (prefix === '') return 'prefix part must not be empty';
    const prefixProblem = checkDns1123Subdomain(prefix);
    if (prefixProblem !== undefined) return `prefix part ${prefixProblem}`;
  }
  if (name === '') return 'name part must not be empty';
  if (name.length > 63) return 'name part must be no more than 63 characters';
  if (!QUALIFIED_NAME_PART.test(name)) {
    return "name part must consist of letters, digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. 'app.kubernetes.io/name')";
  }
  return undefined;
}

export function checkLabelValue(value: string): string | undefined {
  if (value.length > LABEL_VALUE_MAX) return `must be no more than ${LABEL_VALUE_MAX} characters`;
  if (!LABEL_VALUE.test(value)) {
    return "must be empty or consist of letters, digits, '-', '_' or '.', starting and ending with a letter or digit";
  }
  return undefined;
}

/** A named port: ≤ 15 characters, lowercase letters, digits and '-', at least one letter, no '--'. */
export function checkPortName(value: string): string | undefined {
  if (value.length > 15) return 'must be no more than 15 characters';
  if (!IANA_SVC_NAME.test(value)) {
    return "must be an IANA service name: lowercase letters, digits and '-', starting and ending with a letter or digit";
  }
  if (value.includes('--')) return "must not contain consecutive '-'";
  if (!/[a-z]/.test(value)) return 'must contain at least one letter';
  return undefined;
}

export function checkEnvVarName(value: string): string | undefined {
  if (!ENV_VAR_NAME.test(value)) {
    return "must consist of letters, digits, '_', '-' or '.', and must not start with a digit (e.g. 'MY_VAR')";
  }
  return undefined;
}

/** Keys of ConfigMap and Secret data (they become file names in volumes). */
export function checkConfigKey(value: string): string | undefined {
  if (value.length > DNS1123_SUBDOMAIN_MAX) return `must be no more than ${DNS1123_SUBDOMAIN_MAX} characters`;
  if (value === '.' || value === '..') return `must not be '${value}'`;
  if (value.startsWith('..')) return "must not start with '..'";
  if (!CONFIG_KEY.test(value)) return "must consist of letters, digits, '-', '_' or '.' (e.g. 'key.name')";
  return undefined;
}

export function checkIp(value: string): string | undefined {
  return isIP(value) === 0 ? 'must be a valid IPv4 or IPv6 address' : undefined;
}

export function checkCidr(value: string): string | undefined {
  const [address = '', prefix, ...rest] = value.split('/');
  const family = isIP(address);
  const bits = Number(prefix);
  if (
    family === 0 ||
    rest.length > 0 ||
    prefix === undefined ||
    !/^\d+$/.test(prefix) ||
    bits > (family === 4 ? 32 : 128)
  ) {
    return "must be a CIDR such as '10.244.0.0/24' or 'fd00::/64'";
  }
  return undefined;
}
