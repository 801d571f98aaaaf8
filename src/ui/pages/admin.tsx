// Sign-in, the delete confirmation, storage usage and, for admins, users.

import type { User } from '../../registry/users.js';
import type { GcStatus, UsageReport } from '../data.js';
import { formatBytes } from '../format.js';
import { Csrf, Layout, Time, type PageContext } from './layout.js';
import { repoPath } from './repositories.js';

export function LoginPage(props: { ctx: PageContext; error?: string; name?: string; next: string }) {
  return (
    <Layout ctx={props.ctx} title="Sign in">
      <h1>Sign in</h1>
      <p class="muted">With the user name and password you give to docker login.</p>
      {props.error && (
        <p class="notice error" role="alert" id="login-error">
          {props.error}
        </p>
      )}
      <form class="stack" method="post" action="/-/login">
        <Csrf ctx={props.ctx} />
        <input type="hidden" name="next" value={props.next} />
        <label>
          User name
          <input type="text" name="username" autocomplete="username" required autofocus value={props.name ?? ''} />
        </label>
        <label>
          Password
          <input type="password" name="password" autocomplete="current-password" required />
        </label>
        <p>
          <button type="submit">Sign in</button>
        </p>
      </form>
    </Layout>
  );
}

export function DeleteConfirm(props: { ctx: PageContext; name: string; tag?: string; digest?: string; tags: string[] }) {
  const what = props.tag ? `tag ${props.tag}` : `manifest ${props.digest}`;
  return (
    <Layout ctx={props.ctx} title="Delete">
      <h1>Delete {props.tag ? 'a tag' : 'a manifest'}</h1>
      <p>
        Delete the {what} of <b>{props.name}</b>?
      </p>
      {props.tag ? (
        <p class="muted">The manifest stays, reachable by its digest and other tags, until a collection removes what nothing holds.</p>
      ) : (
        <p class="muted">
          Its tags{props.tags.length > 0 ? ` (${props.tags.join(', ')})` : ''} and its referrers go with it. The bytes stay until the next garbage collection.
        </p>
      )}
      <form method="post" action={`${repoPath(props.name)}/-/delete`}>
        <Csrf ctx={props.ctx} />
        {props.tag && <input type="hidden" name="tag" value={props.tag} />}
        {props.digest && <input type="hidden" name="digest" value={props.digest} />}
        <button class="danger" type="submit" id="confirm-delete">
          Delete
        </button>{' '}
        <a href={repoPath(props.name)}>Cancel</a>
      </form>
    </Layout>
  );
}

export function UsagePage(props: { ctx: PageContext; usage: UsageReport; gc: GcStatus }) {
  const { usage, gc } = props;
  return (
    <Layout ctx={props.ctx} title="Storage">
      <h1>Storage</h1>
      <ul class="figures">
        <li>
          <b id="stored-bytes" data-bytes={String(usage.storedBytes)}>
            {formatBytes(usage.storedBytes)}
          </b>{' '}
          stored in {usage.storedBlobs} blobs
        </li>
        <li>
          <b id="gc-last-run">
            <Time ms={gc.lastRunAt} />
          </b>{' '}
          last garbage collection{gc.running ? ' (one is running now)' : ''}
        </li>
        <li>
          <b id="gc-freed">{gc.lastFreed === null ? '-' : formatBytes(gc.lastFreed)}</b> freed by it
        </li>
      </ul>
      <p class="muted">
        "Only here" is what deleting the repository and collecting would free: the bytes no other repository shares. Run <code>berth gc --dry-run</code> for what
        a collection would free now.
      </p>
      <div class="scroll">
        <table id="usage">
          <thead>
            <tr>
              <th scope="col">Repository</th>
              <th scope="col" class="num">Total</th>
              <th scope="col" class="num">Only here</th>
              <th scope="col" class="num">Blobs</th>
            </tr>
          </thead>
          <tbody>
            {usage.repositories.map((r) => (
              <tr>
                <td>
                  <a href={repoPath(r.repository)}>{r.repository}</a>
                </td>
                <td class="num" data-bytes={String(r.total)}>
                  {formatBytes(r.total)}
                </td>
                <td class="num" data-bytes={String(r.unique)}>
                  {formatBytes(r.unique)}
                </td>
                <td class="num">{r.blobs}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Layout>
  );
}

export function UsersPage(props: { ctx: PageContext; users: User[]; notice?: { text: string; error: boolean } }) {
  const { ctx } = props;
  return (
    <Layout ctx={ctx} title="Users">
      <h1>Users</h1>
      {props.notice && (
        <p class={`notice ${props.notice.error ? 'error' : 'ok'}`} role="status" id="users-notice">
          {props.notice.text}
        </p>
      )}
      <div class="scroll">
        <table id="users">
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Admin</th>
              <th scope="col">Groups</th>
              <th scope="col">New password</th>
              <th scope="col"><span class="skip">Remove</span></th>
            </tr>
          </thead>
          <tbody>
            {props.users.map((u) => (
              <tr data-name={u.name}>
                <td>{u.name}</td>
                <td>{u.admin ? 'yes' : 'no'}</td>
                <td>
                  <form class="search" method="post" action="/-/users">
                    <Csrf ctx={ctx} />
                    <input type="hidden" name="action" value="groups" />
                    <input type="hidden" name="name" value={u.name} />
                    <input type="text" name="groups" value={u.groups.join(', ')} aria-label={`Groups of ${u.name}`} />
                    <button class="secondary" type="submit">
                      Set
                    </button>
                  </form>
                </td>
                <td>
                  <form class="search" method="post" action="/-/users">
                    <Csrf ctx={ctx} />
                    <input type="hidden" name="action" value="password" />
                    <input type="hidden" name="name" value={u.name} />
                    <input type="password" name="password" autocomplete="new-password" aria-label={`New password for ${u.name}`} required minlength={8} />
                    <button class="secondary" type="submit">
                      Reset
                    </button>
                  </form>
                </td>
                <td>
                  <form method="post" action="/-/users" data-confirm={`Remove user ${u.name}?`}>
                    <Csrf ctx={ctx} />
                    <input type="hidden" name="action" value="remove" />
                    <input type="hidden" name="name" value={u.name} />
                    <button class="danger" type="submit" aria-label={`Remove user ${u.name}`}>
                      Remove
                    </button>
                  </form>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>Add a user</h2>
      <form class="stack" method="post" action="/-/users">
        <Csrf ctx={ctx} />
        <input type="hidden" name="action" value="add" />
        <label>
          User name
          <input type="text" name="name" required autocomplete="off" />
        </label>
        <label>
          Password (8 characters or more)
          <input type="password" name="password" required minlength={8} autocomplete="new-password" />
        </label>
        <label>
          Groups (comma-separated)
          <input type="text" name="groups" />
        </label>
        <label>
          <span>
            <input type="checkbox" name="admin" value="1" /> Admin
          </span>
        </label>
        <p>
          <button type="submit">Add user</button>
        </p>
      </form>
    </Layout>
  );
}
