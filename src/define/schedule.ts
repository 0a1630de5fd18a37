import { Cron } from 'croner';
import { InvalidDefinitionError } from '../errors.js';

/** Checks the cron expression and time zone of a scheduled integration when it is defined. */
export function checkSchedule(
  where: string,
  def: { cron?: unknown; timezone?: unknown; overlap?: unknown; catchUp?: unknown },
): void {
  if (typeof def.cron !== 'string' || def.cron.trim() === '') {
    throw new InvalidDefinitionError(`${where}: a scheduled integration needs a cron expression`);
  }
  if (def.timezone !== undefined && typeof def.timezone !== 'string') {
    throw new InvalidDefinitionError(`${where}: timezone must be an IANA name such as "Europe/Berlin"`);
  }
  if (def.timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: def.timezone });
    } catch {
      throw new InvalidDefinitionError(`${where}: unknown time zone "${def.timezone}"`);
    }
  }
  try {
    makeCron(def.cron, def.timezone as string | undefined);
  } catch (error) {
    throw new InvalidDefinitionError(`${where}: invalid cron "${def.cron}": ${(error as Error).message}`);
  }
  if (def.overlap !== undefined && def.overlap !== 'skip' && def.overlap !== 'queue') {
    throw new InvalidDefinitionError(`${where}: overlap must be "skip" or "queue"`);
  }
  if (def.catchUp !== undefined && def.catchUp !== 'none' && def.catchUp !== 'last') {
    throw new InvalidDefinitionError(`${where}: catchUp must be "none" or "last"`);
  }
}

/** A cron that only computes slots (paused: it never runs anything itself). */
export function makeCron(pattern: string, timezone?: string): Cron {
  return new Cron(pattern, { paused: true, ...(timezone ? { timezone } : {}) });
}
