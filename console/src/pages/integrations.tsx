/** `#/integrations`: every integration with its mode, what starts it and its counts, each a link to its picture. */
import { ACTIVE, api, type IntegrationSummary } from '../api';
import { percent } from '../format';
import { useLoad } from '../hooks';
import { triggerText } from '../labels';
import { Loading, Page, Problem } from '../ui';

export function IntegrationsPage() {
  const integrations = useLoad(() => api<{ items: IntegrationSummary[] }>('/integrations'), [], 10_000);
  return (
    <Page title="Integrations">
      <Problem message={integrations.error} />
      <Loading when={integrations.data}>
        {() => (
          <div class="table-scroll">
            <table>
              <caption>
                Each integration: open one to see it as a picture of its pattern, steps and connections
              </caption>
              <thead>
                <tr>
                  <th scope="col">Integration</th>
                  <th scope="col">Mode</th>
                  <th scope="col">Started by</th>
                  <th scope="col">Instances</th>
                  <th scope="col">Failed</th>
                  <th scope="col">Active</th>
                  <th scope="col">Error rate</th>
                </tr>
              </thead>
              <tbody>
                {integrations.data!.items.map((i) => (
                  <tr key={i.id}>
                    <th scope="row">
                      <a href={`#/integrations/${encodeURIComponent(i.id)}`}>{i.id}</a>
                      {i.description ? (
                        <>
                          <br />
                          <small>{i.description}</small>
                        </>
                      ) : null}
                    </th>
                    <td>{i.mode}</td>
                    <td>
                      <ul class="plain">
                        {i.triggers.map((t, n) => (
                          <li key={n}>{triggerText(t)}</li>
                        ))}
                      </ul>
                    </td>
                    <td>{i.stats.total}</td>
                    <td>{i.counts.failed}</td>
                    <td>{[...ACTIVE].reduce((sum, status) => sum + (i.counts[status] ?? 0), 0)}</td>
                    <td>{percent(i.stats.errorRate)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Loading>
    </Page>
  );
}
