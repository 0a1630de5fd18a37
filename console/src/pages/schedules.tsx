import { useState } from 'preact/hooks';
import { api, post, type Schedule } from '../api';
import { inZones } from '../format';
import { useLoad } from '../hooks';
import { useCan } from '../session';
import { Json, Loading, Page, Problem } from '../ui';

export function SchedulesPage() {
  const schedules = useLoad(() => api<{ items: Schedule[] }>('/schedules'), [], 10_000);
  return (
    <Page title="Schedules">
      <Problem message={schedules.error} />
      <Loading when={schedules.data}>
        {() =>
          schedules.data!.items.length === 0 ? (
            <p>No scheduled integration.</p>
          ) : (
            <ul class="groups">
              {schedules.data!.items.map((schedule) => (
                <ScheduleCard key={schedule.integrationId} schedule={schedule} onRun={schedules.reload} />
              ))}
            </ul>
          )
        }
      </Loading>
    </Page>
  );
}

function ScheduleCard({ schedule, onRun }: { schedule: Schedule; onRun: () => void }) {
  const operator = useCan('operator');
  const zone = schedule.timezone;
  const nextId = `next-${schedule.integrationId}`;
  const last = schedule.lastFiring;
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  return (
    <li class="group">
      <h2>{schedule.integrationId}</h2>
      <dl class="facts">
        <dt>Cron</dt>
        <dd>
          <code>{schedule.cron}</code> in {zone} (overlap: {schedule.overlap})
        </dd>
        <dt id={nextId}>Next firings</dt>
        <dd>
          {schedule.nextSlots.length === 0 ? (
            'none'
          ) : (
            <ol class="plain" aria-labelledby={nextId}>
              {schedule.nextSlots.map((at) => (
                <li key={at}>{inZones(at, zone)}</li>
              ))}
            </ol>
          )}
        </dd>
        <dt>Last firing</dt>
        <dd>
          {last ? (
            <>
              {inZones(last.at, zone)}, {last.by === 'run-now' ? 'run now' : 'by the schedule'}:{' '}
              <a href={`#/instances/${encodeURIComponent(last.instanceId)}`}>{last.instanceId.slice(-12)}</a>
            </>
          ) : (
            'none yet'
          )}
        </dd>
        <dt>Last slot of the schedule</dt>
        <dd>{schedule.lastSlotAt === null ? 'none handled yet' : inZones(schedule.lastSlotAt, zone)}</dd>
      </dl>
      <Json label="Parameters" value={schedule.parameters} />
      {operator ? (
        <button
          type="button"
          onClick={async () => {
            try {
              const accepted = await post<{ instanceId: string }>(
                `/integrations/${encodeURIComponent(schedule.integrationId)}/run?source=console`,
              );
              setError(null);
              setMessage(accepted.instanceId);
              onRun();
            } catch (failure) {
              setError((failure as Error).message);
            }
          }}
        >
          Run {schedule.integrationId} now
        </button>
      ) : null}
      <p aria-live="polite">
        {message ? (
          <>
            Started: <a href={`#/instances/${encodeURIComponent(message)}`}>{message.slice(-12)}</a>
          </>
        ) : null}
      </p>
      <Problem message={error} />
      {schedule.recentSlots.length > 0 ? (
        <details>
          <summary>Recent firings</summary>
          <ul>
            {schedule.recentSlots.map((slot) => (
              <li key={slot.slotAt}>
                {inZones(slot.slotAt, zone)}: {slot.outcome}
                {slot.instanceId ? (
                  <>
                    {' '}
                    <a href={`#/instances/${encodeURIComponent(slot.instanceId)}`}>
                      {slot.instanceId.slice(-12)}
                    </a>
                  </>
                ) : null}
              </li>
            ))}
          </ul>
        </details>
      ) : null}
    </li>
  );
}
