/**
 * The predicate a list or watch applies: its label selector and field selector (selectors.ts)
 * parsed once per request and combined. Undefined when both are empty, so unfiltered requests
 * skip the per-object work.
 */
import type { KubeObject } from '../../proto/gen/types.js';
import type { KindStrategy } from './kinds/strategy.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';

export type ObjectFilter = (object: KubeObject) => boolean;

export function compileObjectFilter(
  strategy: KindStrategy,
  labelSelector: string,
  fieldSelector: string,
): ObjectFilter | undefined {
  const labels = parseLabelSelector(labelSelector);
  const fields = parseFieldSelector(fieldSelector, strategy);
  if (labels.empty && fields.empty) return undefined;
  return (object) => labels.matches(object.metadata.labels) && fields.matches(object);
}
