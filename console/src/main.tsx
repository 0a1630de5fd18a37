import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { onUnauthorised } from './api';
import { VIEWER_ZONE } from './format';
import { useRoute } from './hooks';
import { AdvisorPage } from './pages/advisor';
import { ConnectionsPage } from './pages/connections';
import { ErrorsPage } from './pages/errors';
import { InstancePage } from './pages/instance';
import { InstancesPage } from './pages/instances';
import { IntegrationPage } from './pages/integration';
import { IntegrationsPage } from './pages/integrations';
import { OverviewPage } from './pages/overview';
import { RunPage } from './pages/run';
import { SchedulesPage } from './pages/schedules';
import { loadSession, type Session, SessionContext, UNKNOWN } from './session';
import './style.css';

const NAV = [
  ['/', 'Overview'],
  ['/instances', 'Instances'],
  ['/errors', 'Errors'],
  ['/integrations', 'Integrations'],
  ['/schedules', 'Schedules'],
  ['/connections', 'Connections'],
  ['/advisor', 'Advisor'],
] as const;

function App() {
  const [session, setSession] = useState<Session>(UNKNOWN);
  const { path, query } = useRoute();
  useEffect(() => onUnauthorised(() => window.location.assign('/console/sign-in')), []);
  useEffect(() => {
    loadSession().then(setSession, () => setSession(UNKNOWN));
  }, []);
  useFocusOnNavigation(path);
  const section = `/${path.split('/')[1] ?? ''}`;
  return (
    <SessionContext.Provider value={session}>
      {/* A link to the main content, first in the tab order. The hash is the console's route, so the
          link moves focus itself rather than following "#main" to a page that does not exist. */}
      {/* biome-ignore lint/a11y/useValidAnchor: a skip link is a link; its default would change the route */}
      <a
        href="#main"
        class="skip"
        onClick={(event) => {
          event.preventDefault();
          document.getElementById('main')?.focus();
        }}
      >
        Skip to content
      </a>
      <header class="top">
        <strong class="brand">Tandem</strong>
        <nav aria-label="Console">
          <ul>
            {NAV.map(([href, label]) => (
              <li key={href}>
                <a href={`#${href}`} aria-current={section === href ? 'page' : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="zone">Times in {VIEWER_ZONE}</span>
        {session.signedIn ? (
          <form method="post" action="/console/sign-out" class="sign-out">
            <span class="muted" id="signed-in-as">
              {session.token} ({session.role})
            </span>{' '}
            <button type="submit" class="link">
              Sign out
            </button>
          </form>
        ) : null}
      </header>
      <main id="main" tabIndex={-1}>
        {route(path, query)}
      </main>
    </SessionContext.Provider>
  );
}

/** After a navigation, focus goes to the new page's heading, as it would on a page load. */
function useFocusOnNavigation(path: string) {
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    requestAnimationFrame(() => document.getElementById('page-title')?.focus());
  }, [path]);
}

function route(path: string, query: URLSearchParams) {
  const instance = /^\/instances\/([^/]+)$/.exec(path);
  if (instance) return <InstancePage id={decodeURIComponent(instance[1]!)} />;
  const run = /^\/integrations\/([^/]+)\/run$/.exec(path);
  if (run) return <RunPage id={decodeURIComponent(run[1]!)} />;
  const integration = /^\/integrations\/([^/]+)$/.exec(path);
  if (integration) return <IntegrationPage id={decodeURIComponent(integration[1]!)} />;
  switch (path) {
    case '/':
      return <OverviewPage />;
    case '/instances':
      return <InstancesPage query={query} />;
    case '/integrations':
      return <IntegrationsPage />;
    case '/errors':
      return <ErrorsPage query={query} />;
    case '/schedules':
      return <SchedulesPage />;
    case '/connections':
      return <ConnectionsPage />;
    case '/advisor':
      return <AdvisorPage />;
    default:
      return (
        <p>
          No page here. <a href="#/">Go to the overview</a>.
        </p>
      );
  }
}

render(<App />, document.getElementById('app')!);
