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

export function ErrorsPage() {
  const errors = useLoad(() => api<Groups>('/errors'), [], 5_000);
  return (
    <Page title="Errors">
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
                    reload={errors.reload}
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

function GroupCard({ group, reload }: { group: ErrorGroup; reload: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const [progress, setProgress] = useState<{ done: number; failed: number; total: number } | null>(null);
  const running = progress !== null && progress.done + progress.failed < progress.total;
  const rerunAll = async () => {
    setConfirming(false);
    const ids = [...group.instanceIds];
    const state = { done: 0, failed: 0, total: ids.length };
    setProgress({ ...state });
    // A few at a time: the progress moves visibly and the server is not flooded.
    const worker = async () => {
      for (let id = ids.shift(); id !== undefined; id = ids.shift()) {
        try {
          await post(`/instances/${encodeURIComponent(id)}/rerun`, { from: 'failed-step' });
          state.done++;
        } catch {
          state.failed++;
        }
        setProgress({ ...state });
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    reload();
  };
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
          <button type="button" onClick={rerunAll}>
            Confirm rerun of {group.count}
          </button>
          <button type="button" class="secondary" onClick={() => setConfirming(false)}>
            Keep as is
          </button>
        </fieldset>
      ) : (
        <button type="button" disabled={running} onClick={() => setConfirming(true)}>
          Rerun all {group.count}
        </button>
      )}
      {progress ? (
        <div class="progress" aria-live="polite">
          <progress
            max={progress.total}
            value={progress.done + progress.failed}
            aria-label={`Rerun progress of ${title}`}
          />
          <span>
            {progress.done} of {progress.total} queued for rerun
            {progress.failed > 0 ? `, ${progress.failed} refused` : ''}
          </span>
        </div>
      ) : null}
    </li>
  );
}
