/**
 * Run an integration with test input: a form generated from its input schema and filled with a
 * sample, or the same value as JSON. Async and scheduled integrations start an instance (followed
 * here until it finishes); a sync one is called as its route would be, and its answer is shown.
 * Whatever it starts is recorded as started from the console.
 */
import { useEffect, useState } from 'preact/hooks';
import {
  ApiError,
  api,
  type Instance,
  type InstanceDetail,
  type IntegrationInput,
  post,
  type SyncCallResult,
} from '../api';
import { ms } from '../format';
import { useLoad } from '../hooks';
import { hasFields, type JsonSchema, ObjectFields, sampleOf } from '../schema-form';
import { useCan } from '../session';
import { Json, Loading, Page, Problem, StatusBadge } from '../ui';

interface ProblemDocument {
  title?: string;
  status?: number;
  detail?: string;
  errors?: { in?: string; path: string; message: string }[];
}

type Outcome = { kind: 'started'; instanceId: string } | { kind: 'called'; result: SyncCallResult };

const FINAL = new Set<string>(['succeeded', 'failed', 'cancelled']);

export function RunPage({ id }: { id: string }) {
  const { data, error } = useLoad(
    () => api<IntegrationInput>(`/integrations/${encodeURIComponent(id)}/input`),
    [id],
  );
  const operator = useCan('operator');
  return (
    <Page title={`Run ${id} with test input`}>
      <Problem message={error} />
      {operator ? (
        <Loading when={data}>{() => <RunForm key={id} spec={data!} />}</Loading>
      ) : (
        <p>Running an integration needs the operator role; this sign-in has the viewer role.</p>
      )}
    </Page>
  );
}

function RunForm({ spec }: { spec: IntegrationInput }) {
  const schema = spec.body as JsonSchema;
  const fields = hasFields(schema);
  const [value, setValue] = useState<unknown>(() => sampleOf(schema, 'input'));
  const [asJson, setAsJson] = useState(!fields);
  const [text, setText] = useState(() => JSON.stringify(value, null, 2));
  const [textError, setTextError] = useState<string | null>(null);
  const [problem, setProblem] = useState<ProblemDocument | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [busy, setBusy] = useState(false);

  const switchTo = (json: boolean) => {
    if (json) setText(JSON.stringify(value, null, 2));
    else if (textError) return;
    setAsJson(json);
  };
  const onText = (next: string) => {
    setText(next);
    try {
      setValue(next.trim() === '' ? undefined : JSON.parse(next));
      setTextError(null);
    } catch (failure) {
      setTextError(`Not valid JSON: ${(failure as Error).message}`);
    }
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    if (asJson && textError) return;
    setBusy(true);
    setProblem(null);
    setOutcome(null);
    const path = `/integrations/${encodeURIComponent(spec.integrationId)}`;
    try {
      if (spec.mode === 'sync') {
        const result = await post<SyncCallResult>(`${path}/call?source=console`, value ?? {});
        setOutcome({ kind: 'called', result });
      } else {
        const accepted = await post<{ instanceId: string }>(`${path}/run?source=console`, value);
        setOutcome({ kind: 'started', instanceId: accepted.instanceId });
      }
    } catch (failure) {
      const document = failure instanceof ApiError ? (failure.problem as ProblemDocument | null) : null;
      setProblem(document ?? { detail: (failure as Error).message });
    } finally {
      setBusy(false);
    }
  };

  const errors = Object.fromEntries((problem?.errors ?? []).map((e) => [e.path, e.message]));
  return (
    <>
      <p>
        {spec.mode === 'sync'
          ? 'Calls the handler as its route would, under its deadline, and shows what its caller would get. The call is recorded as a sync instance started from the console.'
          : spec.mode === 'scheduled'
            ? 'Starts an instance now, outside the schedule, with these parameters (they apply to this instance only). It is recorded as started from the console.'
            : 'Starts an instance with this input, as its trigger would. It is recorded as started from the console.'}{' '}
        The sample input comes from the integration's input schema.
      </p>
      <form class="run-form" onSubmit={submit} aria-describedby={problem ? 'run-problem' : undefined}>
        {fields ? (
          <div class="actions">
            <span>Edit the input as:</span>
            <button
              type="button"
              class={asJson ? 'secondary' : ''}
              aria-pressed={!asJson}
              onClick={() => switchTo(false)}
            >
              Form
            </button>
            <button
              type="button"
              class={asJson ? '' : 'secondary'}
              aria-pressed={asJson}
              onClick={() => switchTo(true)}
            >
              JSON
            </button>
          </div>
        ) : null}
        {asJson ? (
          <div class="schema-field">
            <label for="run-json">
              {spec.mode === 'sync' ? 'Request (params, query, input) as JSON' : 'Input as JSON'}
            </label>
            <textarea
              id="run-json"
              rows={12}
              spellcheck={false}
              value={text}
              aria-invalid={textError ? 'true' : undefined}
              aria-describedby={textError ? 'run-json-error' : undefined}
              onInput={(e) => onText((e.target as HTMLTextAreaElement).value)}
            />
            {textError ? (
              <small id="run-json-error" class="problem">
                {textError}
              </small>
            ) : null}
          </div>
        ) : (
          <ObjectFields schema={schema} value={value} onChange={setValue} path="" errors={errors} />
        )}
        <div class="actions">
          <button type="submit" disabled={busy || (asJson && textError !== null)}>
            {spec.mode === 'sync' ? 'Call' : 'Start'}
          </button>
          <button
            type="button"
            class="secondary"
            onClick={() => {
              const sample = sampleOf(schema, 'input');
              setValue(sample);
              setText(JSON.stringify(sample, null, 2));
              setTextError(null);
            }}
          >
            Reset to the sample
          </button>
        </div>
        {problem ? <ProblemBox problem={problem} /> : null}
      </form>
      {outcome?.kind === 'started' ? <Started instanceId={outcome.instanceId} /> : null}
      {outcome?.kind === 'called' ? <Called result={outcome.result} /> : null}
    </>
  );
}

function ProblemBox({ problem }: { problem: ProblemDocument }) {
  return (
    <div id="run-problem" class="error-box" role="alert">
      <p>
        <strong>{problem.title ?? 'Refused'}</strong>
        {problem.status ? ` (${problem.status})` : ''}: {problem.detail ?? ''} Nothing was started or stored.
      </p>
      {problem.errors && problem.errors.length > 0 ? (
        <ul>
          {problem.errors.map((e) => (
            <li key={`${e.path}:${e.message}`}>
              <code>{e.path === '' ? '(the whole input)' : e.path}</code>: {e.message}
            </li>
          ))}
        </ul>
      ) : null}
      <Json value={problem} label="The answer (problem+json)" />
    </div>
  );
}

/** The instance just started, followed until it is final. */
function Started({ instanceId }: { instanceId: string }) {
  const [final, setFinal] = useState(false);
  const { data } = useLoad(
    () => api<InstanceDetail>(`/instances/${encodeURIComponent(instanceId)}`),
    [instanceId],
    final ? undefined : 1_000,
  );
  const instance: Instance | undefined = data?.instance;
  useEffect(() => {
    if (instance && FINAL.has(instance.status)) setFinal(true);
  }, [instance?.status]);
  return (
    <section class="run-outcome" aria-labelledby="run-outcome-title">
      <h2 id="run-outcome-title">Started</h2>
      <p aria-live="polite">
        Instance <a href={`#/instances/${encodeURIComponent(instanceId)}`}>{instanceId}</a>:{' '}
        {instance ? <StatusBadge status={instance.status} /> : 'loading…'}
        {instance && !FINAL.has(instance.status) ? ' (following it live)' : ''}
        {instance && instance.durationMs !== null ? ` in ${ms(instance.durationMs)}` : ''}
      </p>
      {instance && FINAL.has(instance.status) ? (
        instance.error ? (
          <Json value={instance.error} label="Error" />
        ) : (
          <Json value={instance.output} label="Output" />
        )
      ) : null}
    </section>
  );
}

function Called({ result }: { result: SyncCallResult }) {
  return (
    <section class="run-outcome" aria-labelledby="run-outcome-title">
      <h2 id="run-outcome-title">Response</h2>
      <dl class="facts">
        <dt>Status</dt>
        <dd data-figure="status">{result.status}</dd>
        <dt>Content type</dt>
        <dd>{result.contentType ?? 'none (no body)'}</dd>
        <dt>Instance</dt>
        <dd>
          <a href={`#/instances/${encodeURIComponent(result.instanceId)}`}>{result.instanceId}</a>
        </dd>
      </dl>
      <Json value={result.body} label="Body" />
    </section>
  );
}
