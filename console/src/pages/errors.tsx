import { useState } from 'preact/hooks';
import { api, type ErrorGroup, post } from '../api';
import { time } from '../format';
import { useLoad } from '../hooks';
import { Loading, Page, Problem } from '../ui';

interface Groups {
  groups: ErrorGroup[];
  scanned: number;
  truncated: boolean;
}

interface Progress {
  integrationId: string;
  title: string;
  done: number;
  refused: number;
  total: number;
}

export function ErrorsPage() {
  const errors = useLoad(() => api<Groups>('/errors'), [], 5_000);
  const [progress, setProgress] = useState<Progress | null>(null);
  const running = progress !== null && progress.done + progress.refused < progress.total;
  const rerun = async (group: ErrorGroup) => {
    const ids = [...group.instanceIds];
    const state = {
      integrationId: group.integrationId,
      title: `${group.integrationId}: ${group.name}`,
      done: 0,
      refused: 0,
      total: ids.length,
    };
    setProgress({ ...state });
    // A few at a time: the progress moves visibly and the server is not flooded.
    const worker = async () => {
      for (let id = ids.shift(); id !== undefined; id = ids.shift()) {
        try {
          await post(`/instances/${encodeURIComponent(id)}/rerun`, { from: 'failed-step' });
          state.done++;
        } catch {
          state.refused++;
        }
        setProgress({ ...state });
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    errors.reload();
  };
  return (
    <Page title="Errors">
      {progress ? (
        <div class="progress" role="status">
          <progress
            max={progress.total}
            value={progress.done + progress.refused}
            aria-label="Rerun progress"
          />
          <span>
            {progress.title}: {progress.done} of {progress.total} queued for rerun
            {progress.refused > 0 ? `, ${progress.refused} refused` : ''}
            {running ? '…' : '.'}{' '}
            <a href={`#/instances?integration=${encodeURIComponent(progress.integrationId)}`}>
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
                    busy={running}
                    onRerun={rerun}
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
