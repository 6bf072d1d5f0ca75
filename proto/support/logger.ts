/**
 * Structured logging for every process. Components bind their context once
 * (`logger.child({ component: 'scheduler' })`) and log short fixed phrases with fields.
 * error = a person must act; warn = degraded but handled; info = lifecycle; debug = per item.
 * The level comes from SKIFF_LOG_LEVEL (default info); logs go to stderr so stdout stays the
 * command's output.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export const rootLogger: Logger = pino(
  { level: process.env.SKIFF_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination(2),
);

export function componentLogger(component: string, fields: Record<string, unknown> = {}): Logger {
  return rootLogger.child({ component, ...fields });
}
