import { useEffect, useState } from 'preact/hooks';
import { api, type ErrorGroup, type Instance, post, serverNow } from './api';

export interface BulkRerun {
  integrationId: string;
  title: string;
  queued: number;
  refused: number;
  total: number;
  /** Where the reruns stand now, by status, once queued. */
  outcome: Record<string, number>;
}

const WORKERS = 4;
const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

/** Reruns a group's instances from the failed step, then follows them until each has finished. */
export function useBulkRerun(onQueued: () => void) {
  const [state, setState] = useState<BulkRerun | null>(null);
  const [followed, setFollowed] = useState<{ ids: Set<string>; since: number } | null>(null);

  useEffect(() => {
    if (!followed || !state) return;
    const timer = setInterval(async () => {
      const page = await api<{ items: Instance[] }>(
        `/instances?integration=${encodeURIComponent(state.integrationId)}&rerunSince=${followed.since}&limit=1000`,
      ).catch(() => null);
      if (!page) return;
      const outcome: Record<string, number> = {};
      for (const instance of page.items) {
        if (followed.ids.has(instance.id)) outcome[instance.status] = (outcome[instance.status] ?? 0) + 1;
      }
      setState((current) => (current ? { ...current, outcome } : current));
      const finished = Object.entries(outcome).reduce(
        (n, [status, count]) => n + (FINAL.has(status) ? count : 0),
        0,
      );
      if (finished >= followed.ids.size) setFollowed(null);
    }, 1_000);
    return () => clearInterval(timer);
  }, [followed, state?.integrationId]);

  const start = async (group: ErrorGroup) => {
    const ids = [...group.instanceIds];
    const queuedIds = new Set<string>();
    // A little before now by the server's clock: reruns are found by when their run started.
    const since = serverNow() - 2_000;
    const progress: BulkRerun = {
      integrationId: group.integrationId,
      title: `${group.integrationId}: ${group.name}`,
      queued: 0,
      refused: 0,
      total: ids.length,
      outcome: {},
    };
    setState({ ...progress });
    // A few at a time: the progress moves visibly and the server is not flooded.
    const worker = async () => {
      for (let id = ids.shift(); id !== undefined; id = ids.shift()) {
        try {
          await post(`/instances/${encodeURIComponent(id)}/rerun`, { from: 'failed-step' });
          progress.queued++;
          queuedIds.add(id);
        } catch {
          progress.refused++;
        }
        setState({ ...progress });
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, worker));
    setFollowed({ ids: queuedIds, since });
    onQueued();
  };

  return { bulk: state, busy: state !== null && state.queued + state.refused < state.total, start };
}
