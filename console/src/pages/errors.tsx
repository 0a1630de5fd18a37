import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type ErrorGroup } from '../api';
import { useBulkRerun } from '../bulk-rerun';
import { time } from '../format';
import { useLoad } from '../hooks';
import { Loading, Page, Problem } from '../ui';

interface Groups {
  groups: ErrorGroup[];
  scanned: number;
  truncated: boolean;
}

export function ErrorsPage() {
  const errors = useLoad(() => api<Groups>('/errors'), [], 5_000);
  const { bulk, busy, start } = useBulkRerun(errors.reload);
  return (
    <Page title="Errors">
      {bulk ? (
        <div class="progress" role="status">
          <progress max={bulk.total} value={bulk.queued + bulk.refused} aria-label="Rerun progress" />
          <span>
            {bulk.title}: {bulk.queued} of {bulk.total} queued for rerun
            {bulk.refused > 0 ? `, ${bulk.refused} refused` : ''}
            {busy ? '…' : '.'} {describeOutcome(bulk.outcome)}{' '}
            <a href={`#/instances?integration=${encodeURIComponent(bulk.integrationId)}`}>
              Follow them in Instances
            </a>
          </span>
        </div>
      ) : null}
      <Problem message={errors.error} />
      <Loading when={errors.data}>
        {() =>
          errors.data!.groups.length === 0 ? (
            <p>No failed instance. </p>
          ) : (
            <>
              {errors.data!.truncated ? (
                <p>Showing the newest {errors.data!.scanned} failed instances.</p>
              ) : null}
              <ul class="groups">
                {errors.data!.groups.map((group) => (
                  <GroupCard
                    key={`${group.integrationId}|${group.name}|${group.message}`}
                    group={group}
                    busy={busy}
                    onRerun={start}
                  />
                ))}
              </ul>
            </>
          )
        }
      </Loading>
    </Page>
  );
}

function GroupCard({
  group,
  busy,
  onRerun,
}: {
  group: ErrorGroup;
  busy: boolean;
  onRerun: (group: ErrorGroup) => void;
}) {
  const [confirming, setConfirming] = useState(false);
  // The button pressed is replaced by the confirmation: keyboard focus moves along with it.
  const confirmButton = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (confirming) confirmButton.current?.focus();
  }, [confirming]);
  const title = `${group.integrationId}: ${group.name}`;
  return (
    <li class="group">
      <h2>{title}</h2>
      <p>{group.message}</p>
      <p>
        {group.count} failed instance{group.count === 1 ? '' : 's'}, latest {time(group.latestAt)} ·{' '}
        <a href={`#/instances/${encodeURIComponent(group.instanceIds[0]!)}`}>newest instance</a>
      </p>
      {confirming ? (
        <fieldset class="confirm">
          <legend>
            Rerun {group.count} instance{group.count === 1 ? '' : 's'} of {group.integrationId} from the
            failed step?
          </legend>
          <button
            type="button"
            ref={confirmButton}
            onClick={() => {
              setConfirming(false);
              onRerun(group);
            }}
          >
            Confirm rerun of {group.count}
          </button>
          <button type="button" class="secondary" onClick={() => setConfirming(false)}>
            Keep as is
          </button>
        </fieldset>
      ) : (
        <button type="button" disabled={busy} onClick={() => setConfirming(true)}>
          Rerun all {group.count}
        </button>
      )}
    </li>
  );
}

function describeOutcome(outcome: Record<string, number>): string {
  const parts = Object.entries(outcome).map(([status, count]) => `${count} ${status}`);
  return parts.length === 0 ? '' : `Now: ${parts.join(', ')}.`;
}
