// The web UI over HTTP against a real server: what the pages show (counts, sizes, tags
// newest first, config, layers, platforms, referrers), paging, escaping and headers,
// deletes with CSRF and read-only mode, --ui=false, and access control with --auth
// token: sessions, rules, 404 without the name, admin pages.

import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createUser } from '../auth/accounts.js';
import { loadConfig } from '../src/config/config.js';
import { pushBlob, putManifest, sha256, startTestServer, type TestServer } from './helpers/server.js';
import { e2eTools, tempDir, TOOLS } from './helpers/images.js';
import { PageClient, pushConfiguredImage, type ConfiguredImage } from './helpers/ui.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Text content of the element with this id (the first one), tags stripped. */
function byId(html: string, id: string): string {
  const m = new RegExp(`id="${id}"[^>]*>([\\s\\S]*?)</`).exec(html);
  return m ? m[1]!.replace(/<[^>]+>/g, '') : '';
}

function rows(html: string, table: string): string[] {
  const body = new RegExp(`<table id="${table}">[\\s\\S]*?<tbody>([\\s\\S]*?)</tbody>`).exec(html)?.[1] ?? '';
  return [...body.matchAll(/<tr data-name="([^"]+)"/g)].map((m) => m[1]!);
}

describe('web UI pages (authentication off)', () => {
  let srv: TestServer;
  let web: PageClient;
  let web1: ConfiguredImage;
  let index: Buffer;
  const evilLabel = '<script>document.title="owned"</script>';

  beforeAll(async () => {
    srv = await startTestServer();
    web = new PageClient(srv.url);
    web1 = await pushConfiguredImage(srv.url, 'team/web', 'v1', {
      created: '2026-01-02T03:04:05Z',
      config: { Entrypoint: ['/bin/web'], Cmd: ['--port', '80'], Env: ['MODE=prod'], ExposedPorts: { '80/tcp': {} }, Labels: { evil: evilLabel } },
      history: [{ created: '2026-01-02T03:04:05Z', created_by: 'ADD web /bin/web' }],
    }, [1000, 250_000]);
    await putManifest(srv.url, 'team/web', 'stable', web1.manifest);
    const arm = await pushConfiguredImage(srv.url, 'team/web', 'v2-arm64', { architecture: 'arm64' }, [300]);
    const amd = await pushConfiguredImage(srv.url, 'team/web', 'v2-amd64', {}, [400]);
    index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: amd.digest, size: amd.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: OCI_MANIFEST, digest: arm.digest, size: arm.manifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    }));
    await putManifest(srv.url, 'team/web', 'v2', index, OCI_INDEX);
    // A signature referring to v1.
    const empty = Buffer.from('{}');
    await pushBlob(srv.url, 'team/web', empty);
    const sig = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.signature',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 }],
      subject: { mediaType: OCI_MANIFEST, digest: web1.digest, size: web1.manifest.length },
    }));
    await putManifest(srv.url, 'team/web', sha256(sig), sig);
    // The same layer in another repository (a mount).
    const mount = await fetch(`${srv.url}/v2/team/api/blobs/uploads/?mount=${sha256(web1.layers[1]!)}&from=team/web`, { method: 'POST' });
    expect(mount.status).toBe(201);
    await pushConfiguredImage(srv.url, 'team/api', 'latest', {}, [10]);
    await pushConfiguredImage(srv.url, 'other/db', 'latest', {}, [20]);
  });
  afterAll(() => srv?.destroy());

  it('lists repositories with tag count, total size and last push; search filters them', async () => {
    const { status, html, res } = await web.page('/');
    expect(status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(rows(html, 'repositories')).toEqual(['other/db', 'team/api', 'team/web']);
    const summary = await srv.registry.browse.summary('team/web');
    expect(summary.tags).toBe(5);
    const row = new RegExp('data-name="team/web">[\\s\\S]*?</tr>').exec(html)![0];
    expect(row).toContain('<td class="num">5</td>');
    expect(row).toContain(`data-bytes="${summary.size}"`);
    expect(row).toContain('<time datetime=');
    const searched = await web.page('/?q=team');
    expect(rows(searched.html, 'repositories')).toEqual(['team/api', 'team/web']);
    expect(rows((await web.page('/?q=nothing-like-it')).html, 'repositories')).toEqual([]);
  });

  it('shows tags newest first with short digest, size and the platforms of an index', async () => {
    const { html } = await web.page('/r/team/web');
    expect(rows(html, 'tags')).toEqual(['v2', 'v2-amd64', 'v2-arm64', 'stable', 'v1']);
    const v2 = new RegExp('data-name="v2">[\\s\\S]*?</tr>').exec(html)![0];
    expect(v2).toContain('<span class="tag">linux/amd64</span><span class="tag">linux/arm64/v8</span>');
    expect(v2).toContain(`data-copy="${sha256(index)}"`);
    expect(v2).toContain(`>${sha256(index).slice(0, 'sha256:'.length + 12)}<`);
    const v1 = new RegExp('data-name="v1">[\\s\\S]*?</tr>').exec(html)![0];
    const v1Size = web1.manifest.length + web1.config.length + web1.layers.reduce((n, l) => n + l.length, 0);
    expect(v1).toContain(`data-bytes="${v1Size}"`);
    const host = new URL(srv.url).host;
    expect(html).toContain(`docker pull ${host}/team/web:v2</code>`);
    expect(html).toContain(`podman pull ${host}/team/web:v2</code>`);
    expect(html).toContain(`berth pull ${host}/team/web:v2 ./web</code>`);
    expect(rows((await web.page('/r/team/web?q=amd')).html, 'tags')).toEqual(['v2-amd64']);
  });

  it('shows a manifest: config, layers adding up, sharing repositories, referrers, other tags, JSON', async () => {
    const { status, html } = await web.page('/r/team/web/-/manifest/v1');
    expect(status).toBe(200);
    expect(byId(html, 'digest')).toBe(web1.digest);
    expect(html).toContain('<dd class="mono">/bin/web</dd>');
    expect(html).toContain('<dd class="mono">--port 80</dd>');
    expect(html).toContain('<div>MODE=prod</div>');
    expect(html).toContain('<dd class="mono">80/tcp</dd>');
    expect(html).toContain('ADD web /bin/web');
    const sizes = [...html.matchAll(/class="num layer-size" data-bytes="(\d+)"/g)].map((m) => Number(m[1]));
    expect(sizes).toEqual([1000, 250_000]);
    expect(html).toContain('id="layers-total" data-bytes="251000"');
    expect(html).toContain('<a class="tag" href="/r/team/api">team/api</a>');
    expect(html).toMatch(/id="same-digest-tags"><a class="tag" href="\/r\/team\/web\/-\/manifest\/stable">stable<\/a><a class="tag" href="\/r\/team\/web\/-\/manifest\/v1">v1<\/a><\/dd>/);
    expect(html).toContain('<h3 class="mono">application/vnd.example.signature</h3>');
    expect(html).toContain('&quot;schemaVersion&quot;: 2');
    const raw = await web.request(`/r/team/web/-/raw/${web1.digest}`);
    expect(Buffer.from(await raw.arrayBuffer())).toEqual(web1.manifest);
    const idx = await web.page(`/r/team/web/-/manifest/${sha256(index)}`);
    expect(idx.html).toContain('<td class="platform">linux/arm64/v8</td>');
  });

  it('renders what a client pushed as text, under a policy that forbids inline script', async () => {
    const { html, res } = await web.page('/r/team/web/-/manifest/v1');
    expect(html).not.toContain(evilLabel);
    expect(html).toContain('&lt;script&gt;document.title=&quot;owned&quot;&lt;/script&gt;');
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(html).not.toMatch(/<script>|<script [^>]*>[^<]/);
  });

  it('serves the static files under content hashes with a year of caching', async () => {
    const { html } = await web.page('/');
    const css = /href="(\/-\/static\/ui\.[0-9a-f]{12}\.css)"/.exec(html)![1]!;
    const js = /src="(\/-\/static\/ui\.[0-9a-f]{12}\.js)"/.exec(html)![1]!;
    for (const path of [css, js]) {
      const res = await fetch(`${srv.url}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      const hash = /\.([0-9a-f]{12})\./.exec(path)![1];
      expect(sha256(Buffer.from(await res.arrayBuffer())).slice(7, 19)).toBe(hash);
    }
    expect((await fetch(`${srv.url}/-/static/ui.000000000000.css`)).status).toBe(404);
  });

  it('answers 404 for an unknown repository, tag or path, and keeps /v2/ the API', async () => {
    expect((await web.page('/r/no/such')).status).toBe(404);
    expect((await web.page('/r/team/web/-/manifest/nope')).status).toBe(404);
    expect((await web.page('/r/INVALID')).status).toBe(404);
    const api = await fetch(`${srv.url}/v2/`);
    expect(api.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });

  it('deletes a tag after confirmation, with the CSRF token only; the API agrees', async () => {
    await putManifest(srv.url, 'team/web', 'doomed', web1.manifest);
    const confirm = await web.page('/r/team/web/-/delete?tag=doomed');
    expect(confirm.status).toBe(200);
    expect(confirm.html).toContain('id="confirm-delete"');
    const forged = await web.submit('/r/team/web/-/delete', { tag: 'doomed' }, 'x'.repeat(32));
    expect(forged.status).toBe(403);
    const crossSite = await web.request('/r/team/web/-/delete', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example' },
      body: new URLSearchParams({ _csrf: web.cookies.get('berth_csrf')!, tag: 'doomed' }),
    });
    expect(crossSite.status).toBe(403);
    expect((await fetch(`${srv.url}/v2/team/web/manifests/doomed`, { method: 'HEAD' })).status).toBe(200);
    const res = await web.submit('/r/team/web/-/delete', { tag: 'doomed' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/r/team/web');
    expect((await fetch(`${srv.url}/v2/team/web/manifests/doomed`, { method: 'HEAD' })).status).toBe(404);
    expect((await fetch(`${srv.url}/v2/team/web/manifests/v1`, { method: 'HEAD' })).status).toBe(200);
  });

  it('shows storage usage and the last collection', async () => {
    const { status, html } = await web.page('/-/usage');
    expect(status).toBe(200);
    const usage = await srv.registry.usage.report();
    expect(html).toContain(`id="stored-bytes" data-bytes="${usage.storedBytes}"`);
    expect(html).toContain('<a href="/r/team/web">team/web</a>');
    expect(byId(html, 'gc-last-run')).toBe('never');
  });
});

describe('web UI paging', () => {
  let srv: TestServer;
  let web: PageClient;
  beforeAll(async () => {
    srv = await startTestServer();
    web = new PageClient(srv.url);
    const img = await pushConfiguredImage(srv.url, 'paged/tags', 'first', {}, [10]);
    for (let i = 0; i < 150; i++) await putManifest(srv.url, 'paged/tags', `t${String(i).padStart(3, '0')}`, img.manifest);
    for (let i = 0; i < 120; i++) await putManifest(srv.url, `many/r${String(i).padStart(3, '0')}`, 'latest', img.manifest).catch(async () => {
      await pushConfiguredImage(srv.url, `many/r${String(i).padStart(3, '0')}`, 'latest', {}, [10]);
    });
  }, 60_000);
  afterAll(() => srv?.destroy());

  it('pages through repositories and through tags, newest first, without repeating one', async () => {
    const seen: string[] = [];
    for (let path: string | undefined = '/?q=many'; path; ) {
      const { html } = await web.page(path);
      seen.push(...rows(html, 'repositories'));
      path = /<a href="([^"]+)" rel="next">/.exec(html)?.[1]?.replaceAll('&amp;', '&');
    }
    expect(seen).toHaveLength(120);
    expect(new Set(seen).size).toBe(120);
    const tags: string[] = [];
    for (let path: string | undefined = '/r/paged/tags'; path; ) {
      const { html } = await web.page(path);
      tags.push(...rows(html, 'tags'));
      path = /<a href="([^"]+)" rel="next">/.exec(html)?.[1]?.replaceAll('&amp;', '&');
    }
    expect(tags).toHaveLength(151);
    expect(new Set(tags).size).toBe(151);
    expect(tags[0]).toBe('t149');
    expect(tags.at(-1)).toBe('first');
  });
});

describe('web UI switches', () => {
  it('--ui=false, ui: false and BERTH_UI=false turn it off; /v2/ still answers', async () => {
    expect(loadConfig({ flags: { ui: 'false' }, env: {} }).ui).toBe(false);
    expect(loadConfig({ flags: {}, env: { BERTH_UI: 'false' } }).ui).toBe(false);
    expect(loadConfig({ flags: {}, env: {} }).ui).toBe(true);
    const srv = await startTestServer({ ui: false });
    try {
      expect((await fetch(`${srv.url}/`)).status).toBe(404);
      expect((await fetch(`${srv.url}/v2/`)).status).toBe(200);
    } finally {
      await srv.destroy();
    }
  });

  it('read-only mode hides the delete buttons and refuses deletes', async () => {
    const first = await startTestServer();
    await pushConfiguredImage(first.url, 'ro/app', 'v1', {}, [10]);
    await first.close();
    const srv = await startTestServer({ data: first.dataDir, readOnly: true });
    try {
      const web = new PageClient(srv.url);
      const { html } = await web.page('/r/ro/app/-/manifest/v1');
      expect(html).toContain('read-only mode');
      expect(html).not.toContain('/-/delete');
      expect((await web.page('/r/ro/app')).html).not.toContain('/-/delete');
      expect((await web.page('/r/ro/app/-/delete?tag=v1')).status).toBe(405);
      expect((await web.submit('/r/ro/app/-/delete', { tag: 'v1' })).status).toBe(405);
      expect((await fetch(`${srv.url}/v2/ro/app/manifests/v1`, { method: 'HEAD' })).status).toBe(200);
    } finally {
      await srv.destroy();
    }
  });
});

describe('web UI with --auth token', () => {
  let srv: TestServer;
  const rules = [
    { users: ['bob'], repositories: ['secret/**'], actions: [] },
    { users: ['carol'], repositories: ['shared/**'], actions: ['pull', 'delete'] },
    { anonymous: true, repositories: ['public/**'], actions: ['pull'] },
  ];

  beforeAll(async () => {
    // Pushed with authentication off, then served with it on.
    const open = await startTestServer();
    const secret = await pushConfiguredImage(open.url, 'secret/app', 'v1', {}, [10, 20]);
    await pushConfiguredImage(open.url, 'shared/app', 'v1', {}, [30]);
    await pushConfiguredImage(open.url, 'public/app', 'v1', {}, [40]);
    // shared/app holds a layer of secret/app: the page must not name secret/app to bob.
    for (const layer of secret.layers) {
      const mount = await fetch(`${open.url}/v2/shared/app/blobs/uploads/?mount=${sha256(layer)}&from=secret/app`, { method: 'POST' });
      expect(mount.status).toBe(201);
    }
    await pushBlob(open.url, 'shared/app', secret.config);
    await putManifest(open.url, 'shared/app', 'copy', secret.manifest);
    await open.close();
    srv = await startTestServer({ data: open.dataDir, auth: { mode: 'token', rules, loginThrottle: { maxFailures: 5 } } });
    const users = srv.registry.users;
    await createUser(users, { name: 'root', password: 'root-password', admin: true, groups: [] });
    await createUser(users, { name: 'bob', password: 'bob-password', admin: false, groups: [] });
    await createUser(users, { name: 'carol', password: 'carol-password', admin: false, groups: [] });
  });
  afterAll(() => srv?.destroy());

  it('anonymous visitors see only what anonymous pull rules allow', async () => {
    const anon = new PageClient(srv.url);
    const { html } = await anon.page('/');
    expect(rows(html, 'repositories')).toEqual(['public/app']);
    expect(html).toContain('href="/-/login"');
    const hidden = await anon.page('/r/secret/app');
    expect(hidden.status).toBe(404);
    expect(hidden.html).not.toContain('secret');
    expect((await anon.page('/-/usage')).status).toBe(404);
    expect((await anon.page('/-/users')).status).toBe(404);
  });

  it('a wrong password fails; the right one starts an HttpOnly, SameSite=Strict session', async () => {
    const web = new PageClient(srv.url);
    const wrong = await web.signIn('bob', 'not-bobs-password');
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).toContain('Wrong user name or password.');
    expect(web.cookies.has('berth_session')).toBe(false);
    const right = await web.signIn('bob', 'bob-password');
    expect(right.status).toBe(303);
    const session = web.lastSetCookie.find((c) => c.startsWith('berth_session='))!;
    expect(session).toMatch(/; HttpOnly/);
    expect(session).toMatch(/; SameSite=Strict/);
    expect(session).not.toMatch(/; Secure/);
    const { html } = await web.page('/');
    expect(byId(html, 'signed-in-user')).toBe('bob');
    expect(rows(html, 'repositories')).toEqual(['public/app', 'shared/app']);
  });

  it('a repository the user may not pull is a 404 that does not name it, and shared layers do not reveal it', async () => {
    const web = new PageClient(srv.url);
    await web.signIn('bob', 'bob-password');
    for (const path of ['/r/secret/app', '/r/secret/app/-/manifest/v1', '/r/secret/app/-/delete?tag=v1']) {
      const { status, html } = await web.page(path);
      expect(status).toBe(404);
      expect(html).not.toContain('secret');
    }
    expect((await web.submit('/r/secret/app/-/delete', { tag: 'v1' })).status).toBe(404);
    const copy = await web.page('/r/shared/app/-/manifest/copy');
    expect(copy.status).toBe(200);
    expect(copy.html).not.toContain('secret/app');
    const carol = new PageClient(srv.url);
    await carol.signIn('carol', 'carol-password');
    // carol may pull secret/app (the default for users): the layer's other home is shown to her.
    expect((await carol.page('/r/shared/app/-/manifest/copy')).html).toContain('secret/app');
  });

  it('deletes only when the rules allow it', async () => {
    const bob = new PageClient(srv.url);
    await bob.signIn('bob', 'bob-password');
    expect((await bob.page('/r/shared/app/-/manifest/v1')).html).not.toContain('/-/delete');
    expect((await bob.submit('/r/shared/app/-/delete', { tag: 'v1' })).status).toBe(403);
    const carol = new PageClient(srv.url);
    await carol.signIn('carol', 'carol-password');
    expect((await carol.page('/r/shared/app/-/manifest/v1')).html).toContain('/-/delete?tag=v1');
    expect((await carol.submit('/r/shared/app/-/delete', { tag: 'v1' })).status).toBe(303);
    expect(await srv.registry.browse.tagsOf('shared/app', (await srv.registry.manifests.resolve('shared/app', 'copy')).digest)).toEqual(['copy']);
  });

  it('signing out ends the session', async () => {
    const web = new PageClient(srv.url);
    await web.signIn('bob', 'bob-password');
    const out = await web.submit('/-/logout', {});
    expect(out.status).toBe(303);
    expect(web.cookies.has('berth_session')).toBe(false);
    expect(rows((await web.page('/')).html, 'repositories')).toEqual(['public/app']);
  });

  it('a sign-in needs the CSRF token too, and repeated failures are throttled like docker login', async () => {
    const web = new PageClient(srv.url);
    await web.request('/');
    expect((await web.submit('/-/login', { username: 'bob', password: 'bob-password' }, 'y'.repeat(32))).status).toBe(403);
    // maxFailures is 5 per address (an earlier test failed once from here too).
    const statuses: number[] = [];
    for (let i = 0; i < 6 && statuses.at(-1) !== 429; i++) statuses.push((await web.signIn('nobody', 'wrong-password')).status);
    expect(statuses.at(-1)).toBe(429);
    expect(new Set(statuses.slice(0, -1))).toEqual(new Set([401]));
    const refused = await web.signIn('bob', 'bob-password');
    expect(refused.status).toBe(429);
    expect(await refused.text()).toContain('Sign-in refused');
    // The same throttle as the token endpoint: docker login from this address is refused too.
    const token = await fetch(`${srv.url}/auth/token?service=berth-registry`, { headers: { authorization: `Basic ${Buffer.from('bob:bob-password').toString('base64')}` } });
    expect(token.status).toBe(429);
  });
});

describe('web UI admin pages', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ auth: { mode: 'basic' } });
    const users = srv.registry.users;
    await createUser(users, { name: 'root', password: 'root-password', admin: true, groups: [] });
    await createUser(users, { name: 'dave', password: 'dave-password', admin: false, groups: [] });
  });
  afterAll(() => srv?.destroy());

  it('admins add, regroup, reset and remove users; the changes hold for docker login too', async () => {
    const root = new PageClient(srv.url);
    expect((await root.signIn('root', 'root-password')).status).toBe(303);
    expect((await root.page('/-/usage')).status).toBe(200);
    expect(rows((await root.page('/-/users')).html, 'users')).toEqual(['dave', 'root']);
    const added = await root.submit('/-/users', { action: 'add', name: 'erin', password: 'erin-password', groups: 'ci, ops' });
    expect(added.status).toBe(200);
    expect(byId(await added.text(), 'users-notice')).toBe('User erin added.');
    const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    expect((await fetch(`${srv.url}/v2/`, { headers: basic('erin', 'erin-password') })).status).toBe(200);
    expect((await srv.registry.users.get('erin'))!.groups).toEqual(['ci', 'ops']);
    await root.submit('/-/users', { action: 'groups', name: 'erin', groups: 'qa' });
    expect((await srv.registry.users.get('erin'))!.groups).toEqual(['qa']);

    const dave = new PageClient(srv.url);
    await dave.signIn('dave', 'dave-password');
    expect((await dave.page('/-/users')).status).toBe(404);
    expect((await dave.submit('/-/users', { action: 'remove', name: 'erin' })).status).toBe(404);
    // A password change ends the user's sessions (issued before it, by the second).
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 2000);
      await root.submit('/-/users', { action: 'password', name: 'dave', password: 'new-dave-password' });
      expect(byId((await dave.page('/')).html, 'signed-in-user')).toBe('');
    } finally {
      vi.useRealTimers();
    }
    expect((await fetch(`${srv.url}/v2/`, { headers: basic('dave', 'new-dave-password') })).status).toBe(200);

    const short = await root.submit('/-/users', { action: 'add', name: 'frank', password: 'short' });
    expect(short.status).toBe(400);
    expect(await short.text()).toContain('password too short');
    await root.submit('/-/users', { action: 'remove', name: 'erin' });
    expect((await fetch(`${srv.url}/v2/`, { headers: basic('erin', 'erin-password') })).status).toBe(401);
  });
});

describe('web UI sessions beyond the rules', () => {
  it('--anonymous-pull shows every repository to visitors who have not signed in', async () => {
    const open = await startTestServer();
    await pushConfiguredImage(open.url, 'anyone/app', 'v1', {}, [10]);
    await open.close();
    const srv = await startTestServer({ data: open.dataDir, auth: { mode: 'token', anonymousPull: true } });
    try {
      const anon = new PageClient(srv.url);
      expect(rows((await anon.page('/')).html, 'repositories')).toEqual(['anyone/app']);
      expect((await anon.page('/r/anyone/app/-/manifest/v1')).status).toBe(200);
      expect((await anon.page('/r/anyone/app/-/manifest/v1')).html).not.toContain('/-/delete');
    } finally {
      await srv.destroy();
    }
  });

  it('behind a TLS proxy (publicUrl https://...) cookies are Secure and pull lines name the public host', async () => {
    const srv = await startTestServer({ publicUrl: 'https://registry.example.com', auth: { mode: 'basic', anonymousPull: true } });
    try {
      await createUser(srv.registry.users, { name: 'pat', password: 'pat-password', admin: true, groups: [] });
      const basic = `Basic ${Buffer.from('pat:pat-password').toString('base64')}`;
      const config = Buffer.from('{"os":"linux","architecture":"amd64"}');
      const up = await fetch(`${srv.url}/v2/proxied/app/blobs/uploads/?digest=${sha256(config)}`, { method: 'POST', body: config, headers: { authorization: basic } });
      expect(up.status).toBe(201);
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [] }));
      const put = await fetch(`${srv.url}/v2/proxied/app/manifests/v1`, { method: 'PUT', body: manifest, headers: { authorization: basic, 'content-type': OCI_MANIFEST } });
      expect(put.status).toBe(201);
      const web = new PageClient(srv.url);
      const { html } = await web.page('/r/proxied/app');
      expect(html).toContain('docker pull registry.example.com/proxied/app:v1</code>');
      expect(web.lastSetCookie.find((c) => c.startsWith('berth_csrf='))).toMatch(/; Secure/);
      // The browser's Origin is the public one; the Host header the proxy sends is not.
      const signIn = await web.request('/-/login', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://registry.example.com' },
        body: new URLSearchParams({ _csrf: web.cookies.get('berth_csrf')!, username: 'pat', password: 'pat-password' }),
      });
      expect(signIn.status).toBe(303);
      expect(web.lastSetCookie.find((c) => c.startsWith('berth_session='))).toMatch(/; Secure/);
    } finally {
      await srv.destroy();
    }
  });

  it.skipIf(!e2eTools('openssl'))('marks the session cookie Secure under TLS', async () => {
    const dir = await tempDir('berth-ui-tls-');
    const cert = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    execFileSync(TOOLS.openssl, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    const srv = await startTestServer({ tls: { cert, key }, auth: { mode: 'basic' } });
    try {
      await createUser(srv.registry.users, { name: 'tess', password: 'tess-password', admin: false, groups: [] });
      const request = (path: string, method: string, headers: Record<string, string>, body?: string) =>
        new Promise<{ status: number; cookies: string[] }>((resolve, reject) => {
          const req = httpsRequest(`${srv.url}${path}`, { method, headers, rejectUnauthorized: false }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, cookies: ([] as string[]).concat(res.headers['set-cookie'] ?? []) }));
          });
          req.on('error', reject);
          req.end(body);
        });
      const first = await request('/-/login', 'GET', {});
      const csrf = first.cookies.find((c) => c.startsWith('berth_csrf='))!;
      expect(csrf).toMatch(/; Secure/);
      const token = csrf.split(';')[0]!.slice('berth_csrf='.length);
      const signedIn = await request('/-/login', 'POST', { 'content-type': 'application/x-www-form-urlencoded', cookie: `berth_csrf=${token}` }, new URLSearchParams({ _csrf: token, username: 'tess', password: 'tess-password' }).toString());
      expect(signedIn.status).toBe(303);
      const session = signedIn.cookies.find((c) => c.startsWith('berth_session='))!;
      expect(session).toMatch(/; HttpOnly/);
      expect(session).toMatch(/; Secure/);
      expect(session).toMatch(/; SameSite=Strict/);
    } finally {
      await srv.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
