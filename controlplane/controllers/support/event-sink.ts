/** Events written straight through the control plane's own API handlers (no client, no token). */
import { EventRecorder, KUBERNETES_EVENT_LIMIT, type EventSink } from '../../../proto/events.js';
import type { Clock } from '../../../proto/informer/work-queue.js';
import type { Logger } from '../../../proto/support/logger.js';
import type { ApiHandlers } from '../../api/handlers.js';

export function handlersEventSink(handlers: ApiHandlers): EventSink {
  return {
    create: async (object) => (await handlers.create(object)).object as never,
    update: async (object) => (await handlers.update(object)).object as never,
  };
}

/**
 * The Event recorder of a leader's controller (`component`: its name in each Event's source),
 * limited per object as kube-controller-manager's recorder is.
 */
export function controllerEventRecorder(
  handlers: ApiHandlers,
  component: string,
  log: Logger,
  clock: Pick<Clock, 'now'>,
): EventRecorder {
  return new EventRecorder({
    sink: handlersEventSink(handlers),
    component,
    host: 'skiff-controlplane',
    log: log.child({ component: 'events' }),
    now: () => new Date(clock.now()),
    perObjectLimit: KUBERNETES_EVENT_LIMIT,
  });
}
