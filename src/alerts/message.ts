/**
 * One alert message: what a burst of events amounts to, as the JSON a webhook receives and an
 * e-mail renders. Failures are grouped as the console's errors page groups them (integration, error
 * code, step, connection), so that each group links to the card an operator acts on.
 */
/** Failed instances of one group within the burst. */
export interface FailureGroup {
  integrationId: string;
  code: string | null;
  step: string | null;
  connection: string | null;
  count: number;
  /** ISO times of the group's first and latest failure in the burst. */
  firstAt: string;
  latestAt: string;
  /** Up to three distinct messages, each with an instance that failed with it. */
  examples: { message: string; instanceId: string; count: number }[];
  /** The console's errors page, opened at this group. */
  link: string;
}

export interface CircuitChange {
  connection: string;
  state: 'open' | 'closed';
  at: string;
  link: string;
}

export interface MissedSlot {
  integrationId: string;
  /**
   * `skipped`: an instance of the schedule was still active (overlap: skip). `not-fired`: no
   * scheduler ran at the slot's time (the process was stopped or late). `error`: firing failed.
   */
  reason: 'skipped' | 'not-fired' | 'error';
  /** The (first) missed slot; with `untilAt`, the slots from one to the other. */
  slotAt: string;
  untilAt?: string;
  /** For `skipped`: the instance still active. */
  instanceId?: string;
  link: string;
}

export interface BacklogChange {
  state: 'above' | 'below';
  depth: number;
  threshold: number;
  at: string;
  link: string;
}

/** What a webhook receives (or a CloudEvent's `data`) and an e-mail is made of. */
export interface AlertMessage {
  type: 'tandem.alert';
  /** One line saying what happened. */
  title: string;
  /** ISO times of the burst's first event and of its close. */
  from: string;
  to: string;
  /** The process that saw the events (alerts are gathered per process). */
  process: string;
  /** The console's errors page. */
  console: string;
  failures: FailureGroup[];
  /** Failed instances counted but not listed in `failures` (more groups than a message lists). */
  moreFailures: number;
  circuits: CircuitChange[];
  schedules: MissedSlot[];
  backlog: BacklogChange[];
  /** Events of the other kinds counted but not listed. */
  moreEvents: number;
  /**
   * Set on a message composed from the store for a process that stopped before sending its own:
   * says so, and that its circuit and schedule events are not known.
   */
  note?: string;
}

/** The key of a failure group, the same text as the errors page's group key. */
export function groupKey(
  integrationId: string,
  code: string | null,
  step: string | null,
  connection: string | null,
): string {
  return JSON.stringify([integrationId, code, step, connection]);
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The one-line summary of a message. */
export function titleOf(message: Omit<AlertMessage, 'title'>): string {
  const parts: string[] = [];
  const failed = message.failures.reduce((sum, group) => sum + group.count, 0) + message.moreFailures;
  if (failed > 0) {
    const [only] = message.failures;
    const where =
      message.failures.length === 1 && message.moreFailures === 0 && only
        ? ` in ${only.integrationId}${only.step === null ? '' : ` at step ${only.step}`} (${only.code ?? 'error'})`
        : ` in ${plural(message.failures.length + (message.moreFailures > 0 ? 1 : 0), 'group')}`;
    parts.push(`${plural(failed, 'instance')} failed${where}`);
  }
  for (const change of message.circuits) {
    parts.push(`circuit ${change.connection} ${change.state === 'open' ? 'opened' : 'closed'}`);
  }
  for (const slot of message.schedules) parts.push(`${slot.integrationId} missed a slot (${slot.reason})`);
  for (const change of message.backlog) {
    parts.push(
      change.state === 'above'
        ? `backlog ${change.depth} above ${change.threshold}`
        : `backlog back under ${change.threshold} (${change.depth})`,
    );
  }
  if (message.moreEvents > 0) parts.push(`${plural(message.moreEvents, 'more event')}`);
  return `Tandem: ${parts.join('; ')}`;
}

/** The message as plain text, for e-mail. */
export function textOf(message: AlertMessage): string {
  const lines = [message.title, '', `From ${message.from} to ${message.to} (process ${message.process}).`];
  if (message.note) lines.push(message.note);
  if (message.failures.length > 0) {
    lines.push('', 'Failed instances:');
    for (const group of message.failures) {
      const where = [group.step === null ? null : `step ${group.step}`, group.connection]
        .filter(Boolean)
        .join(', ');
      lines.push(
        `- ${group.integrationId}: ${plural(group.count, 'instance')}, ${group.code ?? 'error'}${where ? ` (${where})` : ''}`,
      );
      for (const example of group.examples) lines.push(`    "${example.message}" ×${example.count}`);
      lines.push(`    ${group.link}`);
    }
    if (message.moreFailures > 0) lines.push(`- and ${plural(message.moreFailures, 'more instance')}`);
  }
  if (message.circuits.length > 0) {
    lines.push('', 'Circuits:');
    for (const change of message.circuits) {
      lines.push(`- ${change.connection} ${change.state === 'open' ? 'opened' : 'closed'} at ${change.at}`);
    }
  }
  if (message.schedules.length > 0) {
    lines.push('', 'Schedules:');
    for (const slot of message.schedules) {
      lines.push(
        `- ${slot.integrationId} missed ${slot.untilAt ? `the slots ${slot.slotAt} to ${slot.untilAt}` : `the slot ${slot.slotAt}`} (${slot.reason})`,
      );
    }
  }
  if (message.backlog.length > 0) {
    lines.push('', 'Backlog:');
    for (const change of message.backlog) {
      lines.push(
        `- ${change.depth} instances waiting at ${change.at}: ${change.state} the threshold of ${change.threshold}`,
      );
    }
  }
  if (message.moreEvents > 0) lines.push('', `And ${plural(message.moreEvents, 'more event')} not listed.`);
  lines.push('', `Console: ${message.console}`);
  return `${lines.join('\n')}\n`;
}
