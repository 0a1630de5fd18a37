/** An integration's advice as the advisor and the integration's picture show it: title, message, figures in words. */
import { Fragment } from 'preact';
import type { IntegrationSummary } from './api';
import { ADVICE_TITLES, adviceFigure } from './labels';

type Advice = IntegrationSummary['advice'][number];

export function AdviceList(props: { advice: Advice[]; heading: 'h3' | 'h4'; none: string }) {
  const Heading = props.heading;
  if (props.advice.length === 0) return <p>{props.none}</p>;
  return (
    <>
      {props.advice.map((advice) => (
        <div key={advice.kind}>
          <Heading>{ADVICE_TITLES[advice.kind]}</Heading>
          <p>{advice.message}</p>
          <dl class="facts">
            {Object.entries(advice.figures).map(([name, value]) => {
              const [label, shown] = adviceFigure(name, value);
              return (
                <Fragment key={name}>
                  <dt>{label}</dt>
                  <dd>{shown}</dd>
                </Fragment>
              );
            })}
          </dl>
        </div>
      ))}
    </>
  );
}
