/**
 * Values one object holds across the whole cluster: a Service's ClusterIP and its node ports. Each
 * is a key of its own in the store (`serviceipallocations/<ip>`, `servicenodeportallocations/<port>`,
 * its value the holder's namespace/name and uid), created in the same etcd transaction as the
 * object that takes it and deleted in the one that releases it, so two objects can never hold one
 * value and nothing leaks when a write fails (Kubernetes keeps a bitmap and repairs it in a loop).
 */
import type { ObjectKey, Write } from '../store/store.js';

export type ReservationRange = 'serviceIPs' | 'nodePorts';

export interface Reservation {
  range: ReservationRange;
  value: string;
  /** The field that holds it, for errors (`spec.clusterIP`, `spec.ports[0].nodePort`). */
  field: string;
}

const RESOURCES: Record<ReservationRange, string> = {
  serviceIPs: 'serviceipallocations',
  nodePorts: 'servicenodeportallocations',
};

export function reservationResource(range: ReservationRange): string {
  return RESOURCES[range];
}

export function reservationKey(reservation: Pick<Reservation, 'range' | 'value'>): ObjectKey {
  return { resource: RESOURCES[reservation.range], name: reservation.value };
}

/** Who holds a value: what its key stores. */
export interface ReservationHolder {
  namespace: string;
  name: string;
  uid: string;
}

export function encodeHolder(holder: {
  namespace?: string | undefined;
  name?: string | undefined;
  uid?: string | undefined;
}): Uint8Array {
  const stored: ReservationHolder = {
    namespace: holder.namespace ?? '',
    name: holder.name ?? '',
    uid: holder.uid ?? '',
  };
  return new TextEncoder().encode(JSON.stringify(stored));
}

export function decodeHolder(bytes: Uint8Array): ReservationHolder {
  return JSON.parse(new TextDecoder().decode(bytes)) as ReservationHolder;
}

const sameValue = (a: Reservation, b: Reservation) => a.range === b.range && a.value === b.value;

/** The writes that take what `after` holds and `before` did not, and release the reverse. */
export function reservationWrites(
  before: readonly Reservation[],
  after: readonly Reservation[],
  holder: { namespace?: string | undefined; name?: string | undefined; uid?: string | undefined },
): Write[] {
  const value = encodeHolder(holder);
  return [
    ...after
      .filter((r) => !before.some((b) => sameValue(b, r)))
      .map((r): Write => ({ type: 'create', key: reservationKey(r), value })),
    ...before
      .filter((r) => !after.some((a) => sameValue(a, r)))
      .map((r): Write => ({ type: 'delete', key: reservationKey(r) })),
  ];
}
