/**
 * Reruns a group of failed instances in one request, says which ones were refused and why (a sync
 * instance is never rerun, one not finished cannot be), then follows the reruns until each has
 * finished.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, type BulkRerunResult, type ErrorGroup, type Instance, post } from './api';

type Refusal = BulkRerunResult['refused'][number];

export interface BulkRerun {
  integrationId: string;
  title: string;
  /** Asked for; null until the server answered. */
  queued: number | null;
  total: number;
  refused: Refusal[];
  /** Where the reruns stand now, by status, once queued. */
  outcome: Record<string, number>;
  problem: string | null;
}

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

  const start = async (group: ErrorGroup, title: string) => {
    const ids = [...group.instanceIds];
    const progress: BulkRerun = {
      integrationId: group.integrationId,
      title,
      queued: null,
      total: ids.length,
      refused: [],
      outcome: {},
      problem: null,
    };
    setState({ ...progress });
    try {
      const answer = await post<BulkRerunResult>('/instances/rerun', {
        ids,
        from: 'failed-step',
      });
      const refused = new Set(answer.refused.map((r) => r.instanceId));
      setState({ ...progress, queued: answer.count, refused: answer.refused });
      // Reruns are found by when their run started: the server's time of the request.
      setFollowed({ ids: new Set(ids.filter((id) => !refused.has(id))), since: answer.at });
    } catch (error) {
      setState({ ...progress, queued: 0, problem: (error as Error).message });
    }
    onQueued();
  };

  return { bulk: state, busy: state !== null && state.queued === null, start };
}
