/**
 * Human words for what the API names in keys: the advisor's figures, an integration's triggers and
 * pattern. The console never shows a raw key (`sharePercent`) to an operator.
 */
import type { ApiResponse } from '../../src/server/api/routes.js';
import { ms } from './format';

type Advice = ApiResponse<'listIntegrations'>['items'][number]['advice'][number];
type Trigger = ApiResponse<'getIntegrationPicture'>['triggers'][number];

/** Each advice figure: its label and how its value reads. */
const FIGURES: Record<string, [label: string, show: (value: number | string) => string]> = {
  p95Ms: ['p95 duration', (v) => ms(Number(v))],
  deadlineMs: ['Deadline', (v) => ms(Number(v))],
  calls: ['Calls', String],
  downstreamFailures: ['Failed because a downstream application failed', String],
  sharePercent: ['Share', (v) => `${v} %`],
  immediatePollPercent: ['Callers asking for the result within a second', (v) => `${v} %`],
  connection: ['Connection', String],
  failures: ['Failed instances on it', String],
  totalFailures: ['Failed instances in all', String],
};

/** A figure's label and value; an unknown key is spelt out ("someFigureMs" → "Some figure ms"). */
export function adviceFigure(name: string, value: number | string): [string, string] {
  const known = FIGURES[name];
  if (known) return [known[0], known[1](value)];
  const words = name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  return [words.charAt(0).toUpperCase() + words.slice(1), String(value)];
}

export const ADVICE_TITLES: Record<Advice['kind'], string> = {
  'split-sync-to-async': 'Hand the slow or fragile part off (sync → async)',
  'sync-may-serve': 'A sync integration may serve',
  'check-connection': 'Look at a connection',
};

export const PATTERNS = {
  sync: 'Sync: the caller waits for the answer',
  'sync-to-async': 'Sync → async: answers at once, hands the work off',
  async: 'Async: accepted, then run durably with retries',
  scheduled: 'Scheduled: started by its cron schedule',
} as const;

/** A trigger in words. */
export function triggerText(trigger: Trigger): string {
  switch (trigger.type) {
    case 'http':
      return `${trigger.method} ${trigger.path}${trigger.auth ? ` (${trigger.auth})` : ''}`;
    case 'cron':
      return `Schedule ${trigger.cron}${trigger.timezone ? ` (${trigger.timezone})` : ' (server zone)'}`;
    case 'api':
      return 'Run from the API or console';
    case 'parent':
      return `Started by ${trigger.integrationId} (${trigger.instances} recent)`;
  }
}
