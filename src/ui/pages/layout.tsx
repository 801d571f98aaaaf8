// The frame of every page: head (the stylesheet, the script, the icon: files, never
// inline), the top bar with navigation and the session, and small shared pieces.
// Hono's JSX escapes every text and attribute value, so what a client pushed (names,
// tags, labels, annotations) is always shown as text.

import type { Child } from 'hono/jsx';
import { formatTime, timeAgo } from '../format.js';
import type { Viewer } from '../session.js';
import { CSRF_FIELD } from '../session.js';

export interface PageContext {
  viewer: Viewer;
  csrf: string;
  /** Hashed URLs of the static files. */
  asset(name: string): string;
  /** `host:port` as the browser reached the registry: what docker pull needs. */
  host: string;
  readOnly: boolean;
}

export function Layout(props: { ctx: PageContext; title: string; children?: Child }) {
  const { ctx } = props;
  const { viewer } = ctx;
  return (
    <html lang="en" class="nojs">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · Berth`}</title>
        <link rel="icon" href={ctx.asset('icon.svg')} type="image/svg+xml" />
        <link rel="stylesheet" href={ctx.asset('ui.css')} />
        <script src={ctx.asset('ui.js')} defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <a class="brand" href="/">
            <img src={ctx.asset('icon.svg')} alt="" /> Berth
          </a>
          <nav aria-label="Main">
            <a href="/">Repositories</a>
            {viewer.seesUsage && <a href="/-/usage">Storage</a>}
            {viewer.admin && <a href="/-/users">Users</a>}
          </nav>
          <div class="who">
            {viewer.user ? (
              <>
                <span>
                  Signed in as <b id="signed-in-user">{viewer.user}</b>
                </span>
                <form class="inline" method="post" action="/-/logout">
                  <Csrf ctx={ctx} />
                  <button class="secondary" type="submit">
                    Sign out
                  </button>
                </form>
              </>
            ) : (
              viewer.authOn && <a href="/-/login">Sign in</a>
            )}
          </div>
        </header>
        <main id="main">
          {ctx.readOnly && <p class="notice">The registry is in read-only mode for maintenance: nothing can be deleted.</p>}
          {props.children}
        </main>
      </body>
    </html>
  );
}

export function Csrf(props: { ctx: PageContext }) {
  return <input type="hidden" name={CSRF_FIELD} value={props.ctx.csrf} />;
}

/** A copy button: shown by ui.js (clipboard needs script); the text stays selectable without it. */
export function CopyButton(props: { text: string; label?: string }) {
  return (
    <button type="button" class="copy" data-copy={props.text} aria-label={props.label ?? `Copy ${props.text}`} hidden>
      Copy
    </button>
  );
}

export function Time(props: { ms: number | null | undefined }) {
  if (props.ms === null || props.ms === undefined) return <span class="muted">never</span>;
  return (
    <time datetime={new Date(props.ms).toISOString()} title={formatTime(props.ms)}>
      {timeAgo(props.ms)}
    </time>
  );
}

export function NotFound(props: { ctx: PageContext }) {
  return (
    <Layout ctx={props.ctx} title="Not found">
      <h1>Not found</h1>
      <p>There is nothing here, or you may not see it{props.ctx.viewer.authOn && !props.ctx.viewer.user ? ': sign in first' : ''}.</p>
      <p>
        <a href="/">All repositories</a>
      </p>
    </Layout>
  );
}

export function Message(props: { ctx: PageContext; title: string; text: string; status?: 'error' | 'ok' }) {
  return (
    <Layout ctx={props.ctx} title={props.title}>
      <h1>{props.title}</h1>
      <p class={`notice ${props.status ?? ''}`}>{props.text}</p>
      <p>
        <a href="/">All repositories</a>
      </p>
    </Layout>
  );
}
