/**
 * Tandem's log: pino, as JSON lines for log shippers (`tandem start`) or as one readable line per
 * entry for a person at a terminal (`tandem dev`). The readable form is a small formatter of
 * pino's own lines rather than pino-pretty: a dependency tree of a dozen packages for a few lines
 * of layout did not pay for itself. Also here: the engine observer that writes the lines a person
 * follows (retries, failures, refused requests, circuits, fired schedules), the one place they
 * are written.
 */
import { styleText } from 'node:util';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { EngineObserver, FinishDetail } from './engine/observer.js';
import type { InstanceWork } from './model.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerOptions {
  /** Default `info`. */
  level?: string;
  /** Default `json`. */
  format?: LogFormat;
  /** Where lines go; default stdout. */
  destination?: DestinationStream & { isTTY?: boolean };
}

/** Checks a level given by a person (flag or environment), with a message that names the choices. */
export function checkLogLevel(level: string, where: string): LogLevel {
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new Error(`${where} "${level}" is not a log level: use one of ${LOG_LEVELS.join(', ')}`);
}

/** Checks a log format given by a person. */
export function checkLogFormat(format: string, where: string): LogFormat {
  if ((LOG_FORMATS as readonly string[]).includes(format)) return format as LogFormat;
  throw new Error(`${where} "${format}" is not a log format: use json or pretty`);
}

/**
 * A logger for a Tandem process.
 *
 * @example
 * const logger = createLogger({ level: 'debug', format: 'pretty' });
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = checkLogLevel(options.level ?? 'info', 'The level');
  if (options.format === 'pretty')
    return pino({ level }, prettyStream(options.destination ?? process.stdout));
  return options.destination ? pino({ level }, options.destination) : pino({ level });
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const LEVEL_STYLES: Record<number, Parameters<typeof styleText>[0]> = {
  10: 'gray',
  20: 'gray',
  30: 'green',
  40: 'yellow',
  50: 'red',
  60: ['bgRed', 'white'],
};
/** Fields every line has, shown in the line's head or not at all. */
const HEAD = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v']);

/**
 * A pino destination that writes each entry as `12:04:05.123 WARN  message key=value …`, with an
 * error's stack below it; colours when the target is a terminal (and NO_COLOR is not set).
 */
function prettyStream(out: { write(chunk: string): unknown; isTTY?: boolean }): DestinationStream {
  const colour = out.isTTY === true && !process.env.NO_COLOR;
  return {
    write(line: string) {
      out.write(formatLine(line, colour));
    },
  };
}

/** One pino JSON line as a readable line; anything that is not such a line is passed through. */
export function formatLine(line: string, colour = false): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line);
  } catch {
    return line;
  }
  if (entry === null || typeof entry !== 'object') return line;
  const level = typeof entry.level === 'number' ? entry.level : 30;
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString().slice(11, 23) : '';
  let name = LEVEL_NAMES[level] ?? String(level);
  if (colour) name = styleText(LEVEL_STYLES[level] ?? 'white', name);
  const parts = [time, name, String(entry.msg ?? '')];
  let stack = '';
  for (const [key, value] of Object.entries(entry)) {
    if (HEAD.has(key) || value === undefined) continue;
    if (key === 'err' && value && typeof value === 'object') {
      const err = value as { message?: unknown; stack?: unknown };
      parts.push(`err=${show(err.message)}`);
      if (typeof err.stack === 'string') stack = `\n    ${err.stack.split('\n').join('\n    ')}`;
      continue;
    }
    parts.push(`${key}=${show(value)}`);
  }
  return `${parts.filter((p) => p !== '').join(' ')}${stack}\n`;
}

function show(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * The lines a person watching a Tandem process follows: a retry scheduled (info), an instance that
 * failed for good (error), a trigger request refused before anything was stored (info), a circuit
 * that opened (warn) or closed (info), a cron slot fired (info).
 */
export function loggingObserver(logger: Logger): EngineObserver {
  return {
    finished(instance, outcome, _durationMs, detail) {
      if (outcome === 'retry') {
        logger.info(
          {
            ...attemptFields(instance, detail),
            nextAttemptAt: detail?.runAt == null ? undefined : new Date(detail.runAt).toISOString(),
          },
          'retry scheduled',
        );
      } else if (outcome === 'failed') {
        logger.error(attemptFields(instance, detail), 'instance failed');
      }
    },
    refused(integrationId, error) {
      const { issues } = error.details;
      logger.info(
        {
          integrationId,
          code: error.code,
          status: error.status,
          ...(Array.isArray(issues) ? { issues } : {}),
        },
        'trigger request refused',
      );
    },
    circuit(connectionId, state) {
      if (state === 'open')
        logger.warn({ connectionId }, 'circuit opened: calls fail at once until a probe succeeds');
      else logger.info({ connectionId }, 'circuit closed: calls go through again');
    },
    slot(event) {
      if (event.outcome !== 'fired') return;
      logger.info(
        {
          integrationId: event.integrationId,
          slotAt: new Date(event.slotAt).toISOString(),
          instanceId: event.instanceId,
          ...(event.catchUp ? { catchUp: true } : {}),
        },
        'schedule fired',
      );
    },
  };
}

function attemptFields(instance: InstanceWork, detail: FinishDetail | undefined) {
  return {
    integrationId: instance.integrationId,
    instanceId: instance.id,
    ...(detail?.step === undefined ? {} : { step: detail.step }),
    attempt: instance.attempt,
    errorCode: detail?.error?.code ?? detail?.error?.name,
    error: detail?.error?.message,
  };
}
