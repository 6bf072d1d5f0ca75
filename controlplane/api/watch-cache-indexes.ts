/**
 * The indexes the watch cache keeps, by resource and field: the one list that the control plane
 * gives CachedStore (main.ts) and that the handlers turn a field selector's term into a hint from,
 * so the two cannot disagree. Agents watch their node's pods (`spec.nodeName=<node>`).
 */
import { storedStringField } from '../../proto/objects.js';
import type { Indexer } from '../store/cached-store.js';

export const WATCH_CACHE_INDEXES: Readonly<Record<string, Readonly<Record<string, Indexer>>>> = {
  // read from the bytes: every pod event of the cache is indexed, and a whole decode of each was
  // the cache's largest cost under a status write load
  pods: { 'spec.nodeName': (bytes) => storedStringField('Pod', bytes, ['spec', 'nodeName']) },
};
