import { useState } from 'preact/hooks';
import { AdviceList } from '../advice';
import { api, type IntegrationSummary, post } from '../api';
import { useLoad } from '../hooks';
import { PATTERNS } from '../labels';
import { Loading, Page, Problem } from '../ui';

const QUESTIONS = [
  ['immediateResponse', 'Does the caller need an immediate response?'],
  ['finishesInSeconds', 'Will everything finish in seconds?'],
  ['needsRerun', 'Must a failure be retried or rerun later?'],
] as const;

type Answers = Record<(typeof QUESTIONS)[number][0], boolean>;

export function AdvisorPage() {
  const [answers, setAnswers] = useState<Answers>({
    immediateResponse: true,
    finishesInSeconds: true,
    needsRerun: false,
  });
  const decision = useLoad(
    () => post<{ pattern: keyof typeof PATTERNS; reasons: string[] }>('/advisor/decide', answers),
    [JSON.stringify(answers)],
  );
  const integrations = useLoad(() => api<{ items: IntegrationSummary[] }>('/integrations'), [], 10_000);
  return (
    <Page title="Advisor">
      <h2>Which pattern?</h2>
      <form class="questions" onSubmit={(event) => event.preventDefault()}>
        {QUESTIONS.map(([name, question]) => (
          <fieldset key={name}>
            <legend>{question}</legend>
            {[true, false].map((value) => (
              <label key={String(value)} class="inline">
                <input
                  type="radio"
                  name={name}
                  checked={answers[name] === value}
                  onChange={() => setAnswers({ ...answers, [name]: value })}
                />
                {value ? 'Yes' : 'No'}
              </label>
            ))}
          </fieldset>
        ))}
      </form>
      <Problem message={decision.error} />
      {decision.data ? (
        <div class="decision" aria-live="polite">
          <p>
            Pattern: <strong>{PATTERNS[decision.data.pattern]}</strong>
          </p>
          <ul>
            {decision.data.reasons.map((reason) => (
              <li key={reason}>{reason}</li>
            ))}
          </ul>
        </div>
      ) : null}
      <h2>Advice from the measured figures</h2>
      <Problem message={integrations.error} />
      <Loading when={integrations.data}>
        {() => (
          <ul class="groups">
            {integrations.data!.items.map((integration) => (
              <li class="group" key={integration.id}>
                <h3>
                  <a href={`#/integrations/${encodeURIComponent(integration.id)}`}>{integration.id}</a>{' '}
                  <small>({integration.mode})</small>
                </h3>
                <AdviceList
                  advice={integration.advice}
                  heading="h4"
                  none="No advice: the figures give no reason to change."
                />
              </li>
            ))}
          </ul>
        )}
      </Loading>
    </Page>
  );
}
