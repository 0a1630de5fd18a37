/**
 * `ctx.startMany` of an async or scheduled handler: starts the children as one durable step (a
 * later attempt does not read the inputs again), reports the source's invalid records, and with
 * `await: 'children'` keeps the parent waiting until every child is final.
 *
 * The wait keeps the instance state machine as it is: while children are active the handler
 * throws a RetryAfterError that does not use an attempt, so the parent sits in `retrying` and is
 * claimed again later; its memoised steps return at once and the children are counted again.
 */
import type {
  AnyIntegration,
  AsyncContext,
  ChildCounts,
  FanOutOptions,
  FanOutResult,
} from '../define/integration.js';
import { RetryAfterError } from '../errors.js';
import { ACTIVE } from '../lifecycle/index.js';
import type { InstanceWork, Json } from '../model.js';
import type { FileReader } from '../sources/bytes.js';
import { isRecordSource } from '../sources/source.js';
import type { ExecuteDeps } from './attempt.js';

const DEFAULT_CHECK_EVERY_MS = 1_000;
/** Progress events while children are being started: at most one per this many ms. */
const PROGRESS_EVERY_MS = 500;

export interface FanOutArgs {
  ctx: AsyncContext<unknown>;
  parent: InstanceWork;
  call: number;
  deps: ExecuteDeps;
  child: AnyIntegration | string;
  inputs: Iterable<unknown> | AsyncIterable<unknown>;
  options: FanOutOptions;
}

export async function fanOut(args: FanOutArgs): Promise<FanOutResult> {
  const { ctx, parent, call, deps, options } = args;
  // A connection's files (SFTP) are claimed for this instance while read, and archived once committed.
  const files = isRecordSource(args.inputs) ? args.inputs.fileSet() : undefined;
  const reader: FileReader | undefined = files && {
    instanceId: parent.id,
    use: (connection) => ctx.use(connection),
    claims: deps.acceptor.fileClaims,
    now: () => deps.clock.now(),
  };
  if (files) files.attach(reader!);
  const started = await ctx.step(`start-many:${call}`, async (): Promise<FanOutResult> => {
    let lastProgress = deps.clock.now();
    const totals = await deps.acceptor.startChildren(
      parent,
      call,
      args.child,
      args.inputs,
      { chunkSize: options.chunkSize ?? 1_000 },
      ({ count }) => {
        const now = deps.clock.now();
        if (now - lastProgress < PROGRESS_EVERY_MS) return;
        lastProgress = now;
        ctx.progress({ phase: 'starting', call, started: count });
      },
    );
    const report = isRecordSource(args.inputs) ? args.inputs.report() : undefined;
    ctx.progress({
      phase: 'started',
      call,
      total: totals.count,
      created: totals.created,
      ...(report ? { invalid: report.invalid } : {}),
    });
    return { ...totals, ...(report ? { invalid: report } : {}) };
  });
  // Also on a later attempt (the step stored): a file archived already is no longer held.
  if (files) await files.committed(reader!);
  if (options.await !== 'children') return started;

  const counts = await deps.acceptor.countChildren(parent.id);
  const active = activeOf(counts);
  ctx.progress({ phase: active > 0 ? 'waiting' : 'children-finished', ...progressOf(counts) });
  if (active > 0) {
    throw new RetryAfterError(
      options.checkEveryMs ?? DEFAULT_CHECK_EVERY_MS,
      `Waiting for children: ${counts.total - active} of ${counts.total} finished`,
      { consumesAttempt: false },
    );
  }
  return { ...started, children: counts };
}

function progressOf(counts: ChildCounts): Record<string, Json> {
  return {
    total: counts.total,
    done: counts.succeeded + counts.failed + counts.cancelled,
    succeeded: counts.succeeded,
    failed: counts.failed,
    cancelled: counts.cancelled,
    active: activeOf(counts),
  };
}

/** Children not final yet: queued, running, retrying, or in a durable wait (a sleeping child is not done). */
function activeOf(counts: ChildCounts): number {
  let active = 0;
  for (const status of ACTIVE) active += counts[status];
  return active;
}
