/**
 * Failures as actions: one card per group (integration, error code, step, connection) with example
 * messages, a rerun where one is possible (and why not where it is not), and an acknowledgement
 * that takes the group out of the default view — reversible, and listed with `?acknowledged=show`.
 * Every instance an action leaves as it was is listed with the server's reason.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { type AcknowledgeResult, api, type ErrorGroup, type ErrorGroups, post } from '../api';
import { useBulkRerun } from '../bulk-rerun';
import { time } from '../format';
import { useLoad } from '../hooks';
import { useCan } from '../session';
import { Loading, Page, Problem } from '../ui';

type Refusal = AcknowledgeResult['refused'][number];

/** The outcome of the last acknowledgement, with what is needed to take it back. */
interface Acknowledged {
  title: string;
  ids: string[];
  count: number;
  refused: Refusal[];
  undone: boolean;
  problem: string | null;
}

const titleOf = (group: ErrorGroup) => `${group.integrationId}: ${group.step ?? 'outside any step'}`;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function ErrorsPage({ query }: { query: URLSearchParams }) {
  const showAcknowledged = query.get('acknowledged') === 'show';
  // An alert links to its group (`?group=<key>`): that card alone, with the way back to all.
  const only = query.get('group');
  const errors = useLoad(
    () => api<ErrorGroups>(`/errors${showAcknowledged ? '?acknowledged=show' : ''}`),
    [showAcknowledged],
    5_000,
  );
  const { bulk, busy, start } = useBulkRerun(errors.reload);
  const [acknowledged, setAcknowledged] = useState<Acknowledged | null>(null);
  const [working, setWorking] = useState(false);

  const acknowledge = async (group: ErrorGroup, value: boolean) => {
    setWorking(true);
    const base = { title: titleOf(group), ids: group.instanceIds, undone: !value };
    try {
      const answer = await post<AcknowledgeResult>('/errors/acknowledge', {
        keys: [group.key],
        acknowledged: value,
      });
      setAcknowledged({ ...base, count: answer.count, refused: answer.refused, problem: null });
    } catch (error) {
      setAcknowledged({ ...base, count: 0, refused: [], problem: (error as Error).message });
    }
    setWorking(false);
    errors.reload();
  };

  const undo = async (last: Acknowledged) => {
    setWorking(true);
    try {
      const answer = await post<AcknowledgeResult>('/errors/acknowledge', {
        ids: last.ids,
        acknowledged: false,
      });
      setAcknowledged({ ...last, count: answer.count, refused: answer.refused, undone: true });
    } catch (error) {
      setAcknowledged({ ...last, problem: (error as Error).message });
    }
    setWorking(false);
    errors.reload();
  };

  return (
    <Page
      title="Errors"
      actions={
        <a href={showAcknowledged ? '#/errors' : '#/errors?acknowledged=show'}>
          {showAcknowledged ? 'Hide acknowledged failures' : 'Show acknowledged failures'}
        </a>
      }
    >
      <div role="status" class="outcomes">
        {bulk ? (
          <div class="outcome">
            {bulk.queued === null ? (
              <p>
                {bulk.title}: asking for a rerun of {plural(bulk.total, 'instance')}…
              </p>
            ) : (
              <p>
                {bulk.title}: {bulk.queued} of {bulk.total} queued for rerun. {describeOutcome(bulk.outcome)}{' '}
                <a href={`#/instances?integration=${encodeURIComponent(bulk.integrationId)}`}>
                  Follow them in Instances
                </a>
              </p>
            )}
            <Problem message={bulk.problem} />
            <Refusals refused={bulk.refused} what="rerun" />
          </div>
        ) : null}
        {acknowledged ? (
          <div class="outcome">
            <p>
              {acknowledged.undone
                ? `${acknowledged.title}: ${plural(acknowledged.count, 'failure')} shown again.`
                : `${acknowledged.title}: ${plural(acknowledged.count, 'failure')} acknowledged.`}{' '}
              {!acknowledged.undone && acknowledged.count > 0 ? (
                <button type="button" class="secondary" disabled={working} onClick={() => undo(acknowledged)}>
                  Undo
                </button>
              ) : null}
            </p>
            <Problem message={acknowledged.problem} />
            <Refusals
              refused={acknowledged.refused}
              what={acknowledged.undone ? 'shown again' : 'acknowledged'}
            />
          </div>
        ) : null}
      </div>
      <Problem message={errors.error} />
      <Loading when={errors.data}>
        {() => {
          const all = errors.data!.groups;
          const groups = only === null ? all : all.filter((group) => group.key === only);
          return (
            <>
              {only !== null ? (
                <p>
                  {groups.length === 0
                    ? 'The group this link names has no failure waiting for attention now (rerun, acknowledged or purged).'
                    : 'One group, as an alert named it.'}{' '}
                  <a href="#/errors">Show all groups</a>
                </p>
              ) : all.length === 0 ? (
                <p>
                  {showAcknowledged
                    ? 'No failed instance.'
                    : 'No failure waits for attention: every failed instance is acknowledged, or none failed.'}
                </p>
              ) : errors.data!.truncated ? (
                <p>Showing the newest {errors.data!.scanned} failed instances.</p>
              ) : null}
              {groups.length > 0 ? (
                <ul class="groups">
                  {groups.map((group, index) => (
                    <GroupCard
                      key={group.key}
                      id={`group-${index}`}
                      group={group}
                      busy={busy || working}
                      onRerun={() => start(group, titleOf(group))}
                      onAcknowledge={(value) => acknowledge(group, value)}
                    />
                  ))}
                </ul>
              ) : null}
            </>
          );
        }}
      </Loading>
    </Page>
  );
}

function Refusals({ refused, what }: { refused: Refusal[]; what: string }) {
  if (refused.length === 0) return null;
  return (
    <>
      <p>
        Not {what}: {plural(refused.length, 'instance')}.
      </p>
      <ul class="refusals">
        {refused.map((r) => (
          <li key={r.instanceId}>
            <a href={`#/instances/${encodeURIComponent(r.instanceId)}`}>{r.instanceId}</a>: {r.reason}
          </li>
        ))}
      </ul>
    </>
  );
}

function GroupCard({
  id,
  group,
  busy,
  onRerun,
  onAcknowledge,
}: {
  /** The card's heading id: each action names the group it acts on. */
  id: string;
  group: ErrorGroup;
  busy: boolean;
  onRerun: () => void;
  onAcknowledge: (value: boolean) => void;
}) {
  const operator = useCan('operator');
  const [confirming, setConfirming] = useState(false);
  // The button pressed is replaced by the confirmation: keyboard focus moves along with it.
  const confirmButton = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (confirming) confirmButton.current?.focus();
  }, [confirming]);
  const title = titleOf(group);
  const others = Object.entries(group.codes).filter(([code]) => code !== (group.code ?? '(none)'));
  const open = group.count - group.acknowledged;
  const instancesLink = `#/instances?integration=${encodeURIComponent(group.integrationId)}&status=failed`;
  return (
    <li class="group">
      <h2 id={id}>{title}</h2>
      <dl class="group-facts">
        <div>
          <dt>Error</dt>
          <dd>
            <code>{group.code ?? group.name}</code>
            {others.length > 0 ? ` (with ${others.map(([code, n]) => `${n} ${code}`).join(', ')})` : ''}
          </dd>
        </div>
        <div>
          <dt>Connection</dt>
          <dd>{group.connection ?? 'none'}</dd>
        </div>
        <div>
          <dt>Failed</dt>
          <dd>
            {plural(group.count, 'instance')}
            {group.acknowledged > 0 ? `, ${group.acknowledged} acknowledged` : ''}
          </dd>
        </div>
        <div>
          <dt>First</dt>
          <dd>{time(group.firstAt)}</dd>
        </div>
        <div>
          <dt>Latest</dt>
          <dd>{time(group.latestAt)}</dd>
        </div>
      </dl>
      <h3>Example messages</h3>
      <ul class="examples">
        {group.examples.map((example) => (
          <li key={example.instanceId}>
            <q>{example.message}</q>{' '}
            <span class="muted">
              ×{example.count} ·{' '}
              <a href={`#/instances/${encodeURIComponent(example.instanceId)}`}>an instance</a>
            </span>
          </li>
        ))}
      </ul>
      <p>
        <a href={instancesLink}>Failed instances of {group.integrationId}</a>
      </p>
      {group.rerun.possible ? null : <p class="no-rerun">No rerun: {group.rerun.reason}</p>}
      {confirming ? (
        <fieldset class="confirm">
          <legend>
            Rerun {plural(group.count, 'instance')} of {group.integrationId} from the failed step?
          </legend>
          <button
            type="button"
            ref={confirmButton}
            onClick={() => {
              setConfirming(false);
              onRerun();
            }}
          >
            Confirm rerun of {group.count}
          </button>
          <button type="button" class="secondary" onClick={() => setConfirming(false)}>
            Keep as is
          </button>
        </fieldset>
      ) : !operator ? null : (
        <div class="actions">
          {group.rerun.possible ? (
            <button type="button" disabled={busy} onClick={() => setConfirming(true)} aria-describedby={id}>
              Rerun all {group.count}
            </button>
          ) : null}
          {open > 0 ? (
            <button
              type="button"
              class="secondary"
              disabled={busy}
              onClick={() => onAcknowledge(true)}
              aria-describedby={id}
            >
              Acknowledge {open}
            </button>
          ) : null}
          {group.acknowledged > 0 ? (
            <button
              type="button"
              class="secondary"
              disabled={busy}
              onClick={() => onAcknowledge(false)}
              aria-describedby={id}
            >
              Show again ({group.acknowledged})
            </button>
          ) : null}
        </div>
      )}
    </li>
  );
}

function describeOutcome(outcome: Record<string, number>): string {
  const parts = Object.entries(outcome).map(([status, count]) => `${count} ${status}`);
  return parts.length === 0 ? '' : `Now: ${parts.join(', ')}.`;
}
