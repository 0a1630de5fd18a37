import { api, type ConnectionSummary } from '../api';
import { ms, percent, time } from '../format';
import { useLoad } from '../hooks';
import { Loading, Page, Problem, Scroller } from '../ui';

export function ConnectionsPage() {
  const connections = useLoad(() => api<{ items: ConnectionSummary[] }>('/connections'), [], 3_000);
  return (
    <Page title="Connections">
      <Problem message={connections.error} />
      <Loading when={connections.data}>
        {() =>
          connections.data!.items.length === 0 ? (
            <p>No connection is defined.</p>
          ) : (
            <Scroller label="Connections (scrolls sideways on a narrow screen)">
              <table>
                <caption>Calls since the server started; durations of the last 512 calls</caption>
                <thead>
                  <tr>
                    <th scope="col">Connection</th>
                    <th scope="col">Circuit</th>
                    <th scope="col">Calls</th>
                    <th scope="col">Failures</th>
                    <th scope="col">p50</th>
                    <th scope="col">p95</th>
                    <th scope="col">p99</th>
                    <th scope="col">Last call</th>
                  </tr>
                </thead>
                <tbody>
                  {connections.data!.items.map((c) => (
                    <tr key={c.id}>
                      <th scope="row">
                        {c.id}
                        <br />
                        <small>{c.baseUrl}</small>
                      </th>
                      <td>
                        <span class={`badge circuit-${c.circuit}`}>{c.circuit}</span>
                      </td>
                      <td>{c.calls}</td>
                      <td>
                        {c.failures} ({percent(c.failureRate)})
                      </td>
                      <td>{ms(c.p50)}</td>
                      <td>{ms(c.p95)}</td>
                      <td>{ms(c.p99)}</td>
                      <td>
                        {c.lastStatus ?? (c.lastCallAt ? 'no answer' : '—')}{' '}
                        {c.lastCallAt ? `at ${time(c.lastCallAt)}` : ''}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </Scroller>
          )
        }
      </Loading>
    </Page>
  );
}
