/**
 * What ties an EndpointSlice to its Service, for everything that follows slices (the control
 * plane's EndpointSlice controller writes it; nodes' Service proxy and DNS read it).
 */
import type { EndpointSlice } from './gen/types.js';

/** The label that names a slice's Service (in the slice's namespace). */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** `namespace/name` of the slice's Service; undefined when the slice names none. */
export function serviceKeyOfSlice(slice: EndpointSlice): string | undefined {
  const name = slice.metadata.labels?.[SERVICE_NAME_LABEL];
  return name ? `${slice.metadata.namespace ?? ''}/${name}` : undefined;
}
