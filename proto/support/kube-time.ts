/**
 * Kubernetes' metav1.Time on the wire: RFC 3339 in UTC, whole seconds (`2026-12-07T05:29:50Z`), as
 * creationTimestamp, conditions, events and container states carry it.
 */
export function rfc3339Seconds(date: Date): string {
  // toISOString always ends in ".sssZ" (six-digit years too): cut the milliseconds
  return `${date.toISOString().slice(0, -5)}Z`;
}
