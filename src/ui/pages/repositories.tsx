// The repository list (`/`) and a repository's page (`/r/<name>`): tags newest first.

import type { RepositorySummary, TagCursor, TagDetail } from '../data.js';
import { formatBytes, shortDigest } from '../format.js';
import { CopyButton, Layout, Time, type PageContext } from './layout.js';

export function repoPath(name: string): string {
  return `/r/${name}`;
}

export function manifestPath(name: string, reference: string): string {
  return `/r/${name}/-/manifest/${reference}`;
}

export function RepositoryList(props: { ctx: PageContext; items: RepositorySummary[]; q: string; next?: string; after: string }) {
  const { ctx, items, q } = props;
  return (
    <Layout ctx={ctx} title="Repositories">
      <h1>Repositories</h1>
      <form class="search" method="get" action="/" role="search">
        <label for="q" class="skip">
          Search repositories
        </label>
        <input id="q" type="search" name="q" value={q} placeholder="Search repositories" />
        <button type="submit">Search</button>
      </form>
      {items.length === 0 ? (
        <p class="notice" id="empty">
          {q ? 'No repository matches.' : ctx.viewer.authOn && !ctx.viewer.user ? 'No repository to show: sign in to see more.' : 'No repository yet: push an image.'}
        </p>
      ) : (
        <div class="scroll">
          <table id="repositories">
            <thead>
              <tr>
                <th scope="col">Repository</th>
                <th scope="col" class="num">Tags</th>
                <th scope="col" class="num">Size</th>
                <th scope="col">Last push</th>
              </tr>
            </thead>
            <tbody>
              {items.map((r) => (
                <tr data-name={r.name}>
                  <td>
                    <a href={repoPath(r.name)}>{r.name}</a>
                  </td>
                  <td class="num">{r.tags}</td>
                  <td class="num" data-bytes={String(r.size)}>
                    {formatBytes(r.size)}
                  </td>
                  <td>
                    <Time ms={r.lastPush} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager base="/" q={q} first={props.after ? 'First page' : undefined} next={props.next ? { after: props.next, label: 'Next page' } : undefined} />
    </Layout>
  );
}

/** Links to the first page and the next one, keeping the search. */
function Pager(props: { base: string; q: string; first?: string; next?: { after: string; label: string } }) {
  const href = (after?: string) => {
    const query = new URLSearchParams({ ...(props.q ? { q: props.q } : {}), ...(after ? { after } : {}) }).toString();
    return query ? `${props.base}?${query}` : props.base;
  };
  return (
    <nav class="pager" aria-label="Pages">
      {props.first && <a href={href()}>{props.first}</a>}
      {props.next && (
        <a href={href(props.next.after)} rel="next">
          {props.next.label}
        </a>
      )}
    </nav>
  );
}

/** `docker pull`, `podman pull` and `berth pull` lines for a reference, with copy buttons. */
export function PullCommands(props: { ctx: PageContext; name: string; reference: string }) {
  const sep = props.reference.includes(':') ? '@' : ':';
  const ref = `${props.ctx.host}/${props.name}${sep}${props.reference}`;
  const dir = `./${props.name.split('/').pop()}`;
  const lines = [`docker pull ${ref}`, `podman pull ${ref}`, `berth pull ${ref} ${dir}`];
  return (
    <ul class="pull" aria-label="Pull commands">
      {lines.map((line) => (
        <li>
          <code>{line}</code>
          <CopyButton text={line} />
        </li>
      ))}
    </ul>
  );
}

export function encodeCursor(cursor: TagCursor): string {
  return `${cursor.time}~${cursor.name}`;
}

export function decodeCursor(raw: string | undefined): TagCursor | undefined {
  const m = raw ? /^(\d{1,16})~(.{1,128})$/.exec(raw) : null;
  return m ? { time: Number(m[1]), name: m[2]! } : undefined;
}

export function RepositoryPage(props: {
  ctx: PageContext;
  repo: RepositorySummary;
  tags: TagDetail[];
  q: string;
  next?: TagCursor;
  paged: boolean;
  mayDelete: boolean;
}) {
  const { ctx, repo, tags, q } = props;
  const base = repoPath(repo.name);
  return (
    <Layout ctx={ctx} title={repo.name}>
      <p class="crumbs">
        <a href="/">Repositories</a> /
      </p>
      <h1>{repo.name}</h1>
      <ul class="figures">
        <li>
          <b id="tag-count">{repo.tags}</b> tags
        </li>
        <li>
          <b data-bytes={String(repo.size)}>{formatBytes(repo.size)}</b> stored
        </li>
        <li>
          <b>
            <Time ms={repo.lastPush} />
          </b>{' '}
          last push
        </li>
      </ul>
      {tags[0] && <PullCommands ctx={ctx} name={repo.name} reference={tags[0].name} />}
      <form class="search" method="get" action={base} role="search">
        <label for="tag-filter" class="skip">
          Filter tags
        </label>
        <input id="tag-filter" type="search" name="q" value={q} placeholder="Filter tags" data-filter="#tags tbody tr" />
        <button type="submit">Filter</button>
      </form>
      {tags.length === 0 ? (
        <p class="notice">{q ? 'No tag matches.' : 'No tags.'}</p>
      ) : (
        <div class="scroll">
          <table id="tags">
            <thead>
              <tr>
                <th scope="col">Tag</th>
                <th scope="col">Digest</th>
                <th scope="col" class="num">Size</th>
                <th scope="col">Platforms</th>
                <th scope="col">Pushed</th>
                {props.mayDelete && <th scope="col" class="hide-narrow"><span class="skip">Actions</span></th>}
              </tr>
            </thead>
            <tbody>
              {tags.map((t) => (
                <tr data-name={t.name}>
                  <td>
                    <a href={manifestPath(repo.name, t.name)}>{t.name}</a>
                  </td>
                  <td class="mono">
                    <span title={t.digest}>{shortDigest(t.digest)}</span> <CopyButton text={t.digest} label={`Copy the digest of ${t.name}`} />
                  </td>
                  <td class="num" data-bytes={String(t.size)}>
                    {formatBytes(t.size)}
                  </td>
                  <td class="platforms">
                    {t.platforms.map((p) => (
                      <span class="tag">{p}</span>
                    ))}
                  </td>
                  <td>
                    <Time ms={t.pushedAt} />
                  </td>
                  {props.mayDelete && (
                    <td class="hide-narrow">
                      <a href={`${base}/-/delete?tag=${encodeURIComponent(t.name)}`} aria-label={`Delete tag ${t.name}`}>
                        Delete
                      </a>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager base={base} q={q} first={props.paged ? 'Newest' : undefined} next={props.next && { after: encodeCursor(props.next), label: 'Older tags' }} />
    </Layout>
  );
}
