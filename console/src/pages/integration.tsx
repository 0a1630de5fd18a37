/**
 * `#/integrations/:id`: the integration as a picture (inline SVG), the same facts as a table for
 * whoever does not see the picture, the advisor's advice beside it, and the ways on: its instances
 * and a run with test input.
 */
import { AdviceList } from '../advice';
import { api } from '../api';
import { time } from '../format';
import { useLoad } from '../hooks';
import { PATTERNS, triggerText } from '../labels';
import { childCounts, childVerb, connectionText, type Picture, PictureSvg, stepFigures } from '../picture';
import { useCan } from '../session';
import { Loading, Page, Problem, Scroller } from '../ui';

export function IntegrationPage({ id }: { id: string }) {
  const picture = useLoad(
    () => api<Picture>(`/integrations/${encodeURIComponent(id)}/picture`),
    [id],
    10_000,
  );
  const encoded = encodeURIComponent(id);
  const operator = useCan('operator');
  return (
    <Page title={`Integration ${id}`}>
      <p class="actions">
        <a href={`#/instances?integration=${encoded}`}>Instances of {id}</a>
        {operator ? <a href={`#/integrations/${encoded}/run`}>Run with test input</a> : null}
        <a href="#/integrations">All integrations</a>
      </p>
      <Problem message={picture.error} />
      <Loading when={picture.data}>{() => <Figures picture={picture.data!} />}</Loading>
    </Page>
  );
}

function Figures({ picture }: { picture: Picture }) {
  const { recent } = picture;
  return (
    <>
      {picture.description ? <p>{picture.description}</p> : null}
      <p class="live">
        Figures from the {recent.instances} newest instances (at most {recent.limit}, every run), created{' '}
        {time(recent.from)} to {time(recent.to)}.
      </p>
      <div class="picture-layout">
        <figure class="picture-figure">
          {/* Drawn at its own size (its text stays readable); on a narrow screen it scrolls sideways,
              and the scroller takes focus so that a keyboard can scroll it too. */}
          <Scroller label="The picture (scrolls sideways on a narrow screen)" class="picture-scroll">
            <PictureSvg picture={picture} />
          </Scroller>
          <figcaption>{PATTERNS[picture.pattern]}</figcaption>
        </figure>
        <aside class="advice" aria-labelledby="advice-title">
          <h2 id="advice-title">Advice</h2>
          <AdviceList
            advice={picture.advice}
            heading="h3"
            none="No advice: the figures of the last 24 h give no reason to change."
          />
        </aside>
      </div>
      <h2>Started by</h2>
      <ul>
        {picture.triggers.map((trigger, i) => (
          <li key={i}>
            {trigger.type === 'parent' ? (
              <>
                Started by{' '}
                <a href={`#/integrations/${encodeURIComponent(trigger.integrationId)}`}>
                  {trigger.integrationId}
                </a>{' '}
                ({trigger.instances} recent)
              </>
            ) : (
              triggerText(trigger)
            )}
          </li>
        ))}
      </ul>
      <h2>Steps and connections</h2>
      {picture.steps.length === 0 ? (
        <p>
          No step recorded by the recent instances
          {picture.mode === 'sync' ? ' (a sync instance records its outcome, not its steps)' : ''}.
        </p>
      ) : (
        <Scroller label="Steps and connections (scrolls sideways on a narrow screen)" class="table-scroll">
          <table class="picture-table">
            <caption>
              The steps in the order the recent runs took them, with the connections each calls
            </caption>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Step</th>
                <th scope="col">Connections</th>
                <th scope="col">Times</th>
                <th scope="col">Failures</th>
              </tr>
            </thead>
            <tbody>
              {picture.steps.map((step, i) => {
                const figures = stepFigures(step);
                return (
                  <tr key={step.name} data-step={step.name}>
                    <td>{i + 1}</td>
                    <th scope="row">
                      {step.name}
                      {step.kind === 'wait' ? (
                        <small> (waits for {step.waitKind ?? 'a wake-up'})</small>
                      ) : null}
                    </th>
                    <td>
                      {step.connections.length === 0 ? (
                        'none'
                      ) : (
                        <ul class="plain">
                          {step.connections.map((use) => (
                            <li key={use.id}>
                              {use.id}: {connectionText(use)}
                            </li>
                          ))}
                        </ul>
                      )}
                    </td>
                    <td>{figures.times}</td>
                    <td>{figures.failures}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </Scroller>
      )}
      {picture.outsideSteps.length > 0 ? (
        <p>
          Called outside a step:{' '}
          {picture.outsideSteps.map((use) => `${use.id} (${connectionText(use)})`).join(', ')}
        </p>
      ) : null}
      {picture.children.length > 0 ? (
        <>
          <h2>Starts other integrations</h2>
          <ul>
            {picture.children.map((child) => (
              <li key={child.integrationId}>
                {childVerb(picture, child)}{' '}
                <a href={`#/integrations/${encodeURIComponent(child.integrationId)}`}>
                  {child.integrationId}
                </a>{' '}
                ({child.mode ?? 'no longer defined'}): {childCounts(child)}
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </>
  );
}
