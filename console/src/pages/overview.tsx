import { useEffect, useState } from 'preact/hooks';
import { api, followActivity, type IntegrationSummary } from '../api';
import { LineChart } from '../chart';
import { ms, percent } from '../format';
import { useLoad } from '../hooks';
import { Loading, Page, Problem } from '../ui';

const BUCKET_S = 5;
const BUCKETS = 36;

export function OverviewPage() {
  const { data, error } = useLoad(() => api<{ items: IntegrationSummary[] }>('/integrations'), [], 5_000);
  const throughput = useThroughput();
  return (
    <Page title="Overview">
      <Problem message={error} />
      <h2>Live throughput</h2>
      <LineChart
        title={`Instances finished per ${BUCKET_S} seconds, last 3 minutes`}
        series={[
          { label: 'succeeded', color: '#1b7f3b' },
          { label: 'failed', color: '#b3261e' },
        ]}
        data={throughput}
      />
      <h2>Integrations</h2>
      <Loading when={data}>
        {() => (
          <div class="table-scroll">
            <table>
              <caption>
                Instances created in the last hour; durations and error rate of the last 24 hours
              </caption>
              <thead>
                <tr>
                  <th scope="col">Integration</th>
                  <th scope="col">Mode</th>
                  <th scope="col">Throughput</th>
                  <th scope="col">p50</th>
                  <th scope="col">p95</th>
                  <th scope="col">p99</th>
                  <th scope="col">Error rate</th>
                  <th scope="col">Advice</th>
                </tr>
              </thead>
              <tbody>
                {data!.items.map((integration) => {
                  const day = integration.stats.windows['24h'];
                  const hour = integration.stats.windows['1h'];
                  return (
                    <tr key={integration.id}>
                      <th scope="row">
                        <a href={`#/instances?integration=${encodeURIComponent(integration.id)}`}>
                          {integration.id}
                        </a>
                      </th>
                      <td>{integration.mode}</td>
                      <td>{hour.total} in the last hour</td>
                      <td>{ms(day.p50)}</td>
                      <td>{ms(day.p95)}</td>
                      <td>{ms(day.p99)}</td>
                      <td>{percent(day.failureRate)}</td>
                      <td>
                        {integration.advice.length === 0
                          ? 'None'
                          : integration.advice.map((a) => <p key={a.kind}>{a.message}</p>)}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Loading>
    </Page>
  );
}

/** Instances finished per bucket, counted from the live activity stream since the page opened. */
function useThroughput(): number[][] {
  const empty = () => {
    const now = Math.floor(Date.now() / 1000 / BUCKET_S) * BUCKET_S;
    return [
      Array.from({ length: BUCKETS }, (_, i) => now - (BUCKETS - 1 - i) * BUCKET_S),
      new Array(BUCKETS).fill(0),
      new Array(BUCKETS).fill(0),
    ];
  };
  const [data, setData] = useState<number[][]>(empty);
  useEffect(() => {
    const counts = new Map<number, [number, number]>();
    const draw = () => {
      const [x] = empty();
      setData([x!, x!.map((t) => counts.get(t)?.[0] ?? 0), x!.map((t) => counts.get(t)?.[1] ?? 0)]);
    };
    const stop = followActivity({}, (event) => {
      if (event.type !== 'succeeded' && event.type !== 'failed') return;
      const bucket = Math.floor(event.at / 1000 / BUCKET_S) * BUCKET_S;
      const entry = counts.get(bucket) ?? [0, 0];
      entry[event.type === 'succeeded' ? 0 : 1]++;
      counts.set(bucket, entry);
    });
    const timer = setInterval(draw, 2_000);
    return () => {
      stop();
      clearInterval(timer);
    };
  }, []);
  return data;
}
