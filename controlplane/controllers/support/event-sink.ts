/** Events written straight through the control plane's own API handlers (no client, no token). */
import type { EventSink } from '../../../proto/events.js';
import type { ApiHandlers } from '../../api/handlers.js';

export function handlersEventSink(handlers: ApiHandlers): EventSink {
  return {
    create: async (object) => (await handlers.create(object)).object as never,
    update: async (object) => (await handlers.update(object)).object as never,
  };
}
