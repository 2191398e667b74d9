import type { JSX } from 'preact';
import { render } from 'preact';
import { useOnline } from './api.js';
import { Link } from './components/ui.js';
import { useReadOnly } from './config.js';
import { match, useRoute } from './router.js';
import './styles.css';
import { AuditView } from './views/audit.js';
import { DeadLettersView, DeadLetterTopicView } from './views/dead-letters.js';
import { DriftView } from './views/drift.js';
import { EventTimeView } from './views/event-time.js';
import { LagView } from './views/lag.js';
import { LineageView } from './views/lineage.js';
import { ModelsView } from './views/models.js';
import { Overview } from './views/overview.js';
import { QueryView } from './views/query.js';
import { ReplayView, ReplaysView } from './views/replays.js';
import { TopologyView } from './views/topology.js';
import { EventView, TopicView, TopicsView } from './views/topics.js';

type View = (params: Record<string, string>, search: URLSearchParams) => JSX.Element;

/** Every view and its path under /console: each is a deep link. */
const ROUTES: ReadonlyArray<[string, View]> = [
  ['/', () => <Overview />],
  ['/topologies/:app', (p) => <TopologyView app={p['app']!} />],
  ['/lag', () => <LagView />],
  ['/time', () => <EventTimeView />],
  ['/topics', () => <TopicsView />],
  ['/topics/:topic', (p, s) => <TopicView topic={p['topic']!} search={s} />],
  ['/topics/:topic/:partition/:offset', (p) => <EventView topic={p['topic']!} partition={Number(p['partition'])} offset={Number(p['offset'])} />],
  ['/dead-letters', () => <DeadLettersView />],
  ['/dead-letters/:topic', (p, s) => <DeadLetterTopicView topic={p['topic']!} search={s} />],
  ['/lineage/:topic/:partition/:offset', (p) => <LineageView topic={p['topic']!} partition={Number(p['partition'])} offset={Number(p['offset'])} />],
  ['/drift', (_p, s) => <DriftView search={s} />],
  ['/models', (_p, s) => <ModelsView search={s} />],
  ['/replays', () => <ReplaysView />],
  ['/replays/:id', (p, s) => <ReplayView id={p['id']!} search={s} />],
  ['/query', (_p, s) => <QueryView search={s} />],
  ['/audit', () => <AuditView />],
];

const NAV: ReadonlyArray<[string, string]> = [
  ['/', 'Overview'],
  ['/lag', 'Lag'],
  ['/time', 'Event time'],
  ['/topics', 'Topics'],
  ['/dead-letters', 'Dead letters'],
  ['/models', 'Models'],
  ['/drift', 'Drift'],
  ['/replays', 'Replays'],
  ['/query', 'Query'],
  ['/audit', 'Audit'],
];

function NotFound(props: { path: string }): JSX.Element {
  return (
    <section class="page">
      <h1>No such view</h1>
      <p>
        Nothing lives at <code>{props.path}</code>. <Link to="/">Back to the overview</Link>.
      </p>
    </section>
  );
}

function App(): JSX.Element {
  const { path, search } = useRoute();
  const online = useOnline();
  const readOnly = useReadOnly();
  let view: JSX.Element | undefined;
  for (const [pattern, render] of ROUTES) {
    const params = match(pattern, path);
    if (params !== undefined) {
      view = render(params, search);
      break;
    }
  }
  const section = '/' + (path.split('/')[1] ?? '');
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <Link to="/" class="brand">
          Millrace
        </Link>
        <nav aria-label="Views">
          <ul>
            {NAV.map(([to, label]) => (
              <li>
                <Link to={to} class={(to === '/' ? path === '/' || section === '/topologies' : section === to) ? 'active' : ''}>
                  {label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div class="topbar-status">
          {readOnly ? <span class="badge info">read-only</span> : null}
          <span class={online ? 'badge ok' : 'badge bad'} role="status" data-testid="connection">
            {online ? 'connected' : 'engine unreachable — retrying'}
          </span>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {view ?? <NotFound path={path} />}
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);
