import { useEffect, useState } from 'preact/hooks';
import { api, whenUnauthorized } from './api';
import { startLive, stopLive, useLiveStatus } from './live';
import { href, useRoute } from './router';
import { DeploymentPage } from './pages/deployment';
import { Deployments } from './pages/deployments';
import { Events } from './pages/events';
import { Login } from './pages/login';
import { NodePage } from './pages/node';
import { Nodes } from './pages/nodes';
import { Overview } from './pages/overview';
import { TaskPage, Tasks } from './pages/tasks';
import { Unmanaged } from './pages/unmanaged';

type Session = 'checking' | 'in' | 'out';

export function App() {
  const [session, setSession] = useState<Session>('checking');
  useEffect(() => {
    whenUnauthorized(() => {
      stopLive();
      setSession('out');
    });
    api('GET', '/api/v1/session').then(
      () => setSession('in'),
      () => setSession('out'),
    );
  }, []);
  useEffect(() => {
    if (session === 'in') startLive();
    return stopLive;
  }, [session]);

  if (session === 'checking') return null;
  if (session === 'out') return <Login loggedIn={() => setSession('in')} />;
  return <Shell logOut={() => api('DELETE', '/api/v1/session').finally(() => setSession('out'))} />;
}

const NAV = [
  ['/', 'Overview'],
  ['/nodes', 'Nodes'],
  ['/unmanaged', 'Unmanaged'],
  ['/deployments', 'Deployments'],
  ['/tasks', 'Tasks'],
  ['/events', 'Events'],
] as const;

function Shell({ logOut }: { logOut: () => void }) {
  const route = useRoute();
  const live = useLiveStatus();
  const section = `/${route.path[0] ?? ''}`;
  return (
    <>
      <header>
        <a class="brand" href={href('/')}>
          node-lifecycle
        </a>
        <nav>
          {NAV.map(([path, label]) => (
            <a key={path} href={href(path)} class={section === path ? 'current' : ''}>
              {label}
            </a>
          ))}
        </nav>
        <span class={`live ${live ? 'on' : 'off'}`} data-testid="live" title={live ? 'live updates from the service' : 'reconnecting to the service…'}>
          {live ? 'live' : 'offline'}
        </span>
        <button type="button" onClick={logOut}>
          Log out
        </button>
      </header>
      <main>
        <Page route={route} />
      </main>
    </>
  );
}

function Page({ route }: { route: ReturnType<typeof useRoute> }) {
  const [section, id] = route.path;
  switch (section) {
    case undefined:
      return <Overview />;
    case 'nodes':
      return id ? <NodePage key={id} hostname={id} /> : <Nodes route={route} />;
    case 'unmanaged':
      return <Unmanaged />;
    case 'tasks':
      return id ? <TaskPage key={id} id={id} /> : <Tasks route={route} />;
    case 'deployments':
      return id ? <DeploymentPage key={id} name={id} route={route} /> : <Deployments />;
    case 'events':
      return <Events route={route} />;
    default:
      return <p class="error">No page {section}.</p>;
  }
}
