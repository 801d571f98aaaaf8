// Unit tests of auth/: scope parsing, access rules, password hashes, the login
// throttle, the signing key, and the user store on a real SQLite database.

import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requiredAccess } from '../auth/access.js';
import { changePassword, createUser } from '../auth/accounts.js';
import { resolveAuthConfig } from '../auth/config.js';
import { loadConfig } from '../src/config/config.js';
import { loadOrCreateSigningKey, signingKeyPath } from '../auth/keys.js';
import { hashPassword, verifyPassword } from '../auth/passwords.js';
import { ANONYMOUS, allowedActions, grant, parseRules, type AccessPolicy, type Identity } from '../auth/rules.js';
import { accessAllows, formatScope, parseScope, parseScopes } from '../auth/scope.js';
import { LoginThrottle } from '../auth/throttle.js';
import Database from 'better-sqlite3';
import { openRegistry } from '../src/registry/registry.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-auth-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('scopes', () => {
  it('parses type, name and actions, with colons in the name', () => {
    expect(parseScope('repository:team/app:pull,push')).toEqual({ type: 'repository', name: 'team/app', actions: ['pull', 'push'] });
    expect(parseScope('repository:localhost:5000/team/app:pull')).toEqual({
      type: 'repository',
      name: 'localhost:5000/team/app',
      actions: ['pull'],
    });
    expect(parseScope('registry:catalog:*')).toEqual({ type: 'registry', name: 'catalog', actions: ['*'] });
    expect(parseScope('repository(plugin):team/app:pull')?.type).toBe('repository');
  });

  it('rejects what is not of the grammar', () => {
    for (const bad of ['', 'repository', 'repository:app', 'repository::pull', 'repository:app:', ':app:pull', 'repository:app:PULL']) {
      expect(parseScope(bad), bad).toBeNull();
    }
  });

  it('merges several parameters and space-separated scopes per resource, skipping junk', () => {
    const entries = parseScopes(['repository:a:pull repository:b:push', 'repository:a:push', 'nonsense']);
    expect(entries).toEqual([
      { type: 'repository', name: 'a', actions: ['pull', 'push'] },
      { type: 'repository', name: 'b', actions: ['push'] },
    ]);
    expect(formatScope(entries[0]!)).toBe('repository:a:pull,push');
  });

  it('checks an access claim, `*` granting every action', () => {
    const access = [
      { type: 'repository', name: 'a', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ];
    expect(accessAllows(access, 'repository', 'a', 'pull')).toBe(true);
    expect(accessAllows(access, 'repository', 'a', 'push')).toBe(false);
    expect(accessAllows(access, 'repository', 'b', 'pull')).toBe(false);
    expect(accessAllows(access, 'registry', 'catalog', '*')).toBe(true);
  });
});

describe('required access of a request', () => {
  it('follows method and path, splitting the name on the last route segment', () => {
    expect(requiredAccess('GET', '/v2/')).toEqual({ kind: 'identity' });
    expect(requiredAccess('GET', '/v2/_catalog')).toMatchObject({ type: 'registry', name: 'catalog', action: '*' });
    expect(requiredAccess('HEAD', '/v2/a/b/manifests/latest')).toMatchObject({ name: 'a/b', action: 'pull' });
    expect(requiredAccess('GET', '/v2/a/tags/list')).toMatchObject({ name: 'a', action: 'pull' });
    expect(requiredAccess('GET', '/v2/a/referrers/sha256:00')).toMatchObject({ name: 'a', action: 'pull' });
    expect(requiredAccess('PUT', '/v2/a/blobs/b/manifests/v1')).toMatchObject({ name: 'a/blobs/b', action: 'push' });
    expect(requiredAccess('POST', '/v2/a/blobs/uploads/')).toMatchObject({
      name: 'a',
      action: 'push',
      challengeActions: ['pull', 'push'],
    });
    expect(requiredAccess('PATCH', '/v2/a/blobs/uploads/123')).toMatchObject({ name: 'a', action: 'push' });
    expect(requiredAccess('DELETE', '/v2/a/manifests/sha256:00')).toMatchObject({ name: 'a', action: 'delete' });
  });
});

describe('access rules', () => {
  const alice: Identity = { kind: 'user', name: 'alice', admin: false, groups: ['ci'] };
  const bob: Identity = { kind: 'user', name: 'bob', admin: false, groups: [] };
  const root: Identity = { kind: 'user', name: 'root', admin: true, groups: [] };
  const defaults: AccessPolicy = { anonymousPull: false, rules: [] };

  it('by default: admin everything, users pull all and write their namespace, anonymous nothing', () => {
    expect(allowedActions(defaults, root, 'registry', 'catalog')).toEqual(['*']);
    expect(allowedActions(defaults, root, 'repository', 'x/y')).toEqual(expect.arrayContaining(['pull', 'push', 'delete']));
    expect(allowedActions(defaults, bob, 'repository', 'bob/app')).toEqual(['pull', 'push', 'delete']);
    expect(allowedActions(defaults, bob, 'repository', 'bobby/app')).toEqual(['pull']);
    expect(allowedActions(defaults, bob, 'repository', 'bob')).toEqual(['pull']);
    expect(allowedActions(defaults, bob, 'registry', 'catalog')).toEqual([]);
    expect(allowedActions(defaults, ANONYMOUS, 'repository', 'x')).toEqual([]);
    expect(allowedActions({ ...defaults, anonymousPull: true }, ANONYMOUS, 'repository', 'x')).toEqual(['pull']);
  });

  it('first matching rule decides, by user, group or anonymous and glob', () => {
    const policy: AccessPolicy = {
      anonymousPull: false,
      rules: parseRules([
        { groups: ['ci'], repositories: ['prod/**'], actions: ['pull', 'push'] },
        { users: ['*'], repositories: ['prod/**', 'secret/*'], actions: [] },
        { anonymous: true, repositories: 'public/*', actions: ['pull'] },
        { users: 'bob', repositories: ['shared/*'], actions: ['pull', 'push', 'delete'] },
      ]),
    };
    expect(allowedActions(policy, alice, 'repository', 'prod/web/api')).toEqual(['pull', 'push']);
    expect(allowedActions(policy, bob, 'repository', 'prod/web')).toEqual([]);
    expect(allowedActions(policy, bob, 'repository', 'secret/x')).toEqual([]);
    // `*` stays within one component
    expect(allowedActions(policy, bob, 'repository', 'secret/x/y')).toEqual(['pull']);
    expect(allowedActions(policy, ANONYMOUS, 'repository', 'public/x')).toEqual(['pull']);
    expect(allowedActions(policy, ANONYMOUS, 'repository', 'public/x/y')).toEqual([]);
    expect(allowedActions(policy, bob, 'repository', 'shared/tools')).toEqual(['pull', 'push', 'delete']);
    expect(allowedActions(policy, root, 'repository', 'prod/x')).toContain('push');
  });

  it('grants the intersection of what is asked and allowed', () => {
    const granted = grant(defaults, bob, [
      { type: 'repository', name: 'bob/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'alice/app', actions: ['pull', 'push', 'delete'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    expect(granted).toEqual([
      { type: 'repository', name: 'bob/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'alice/app', actions: ['pull'] },
    ]);
  });

  it('rejects malformed rules at start-up', () => {
    expect(() => parseRules([{ repositories: ['x'], actions: ['pull'] }])).toThrow(/for whom/);
    expect(() => parseRules([{ users: ['a'], actions: ['pull'] }])).toThrow(/repositories/);
    expect(() => parseRules([{ users: ['a'], repositories: ['x'], actions: ['write'] }])).toThrow(/"write"/);
    expect(() => parseRules([{ users: ['a'], repository: ['x'] }])).toThrow(/unknown field/);
    expect(() => parseRules({})).toThrow(/list/);
  });
});

describe('configuration', () => {
  it('has safe defaults and refuses bad values', () => {
    const config = resolveAuthConfig({ mode: 'token' });
    expect(config).toMatchObject({ service: 'berth-registry', tokenTtlSeconds: 300, policy: { anonymousPull: false } });
    expect(() => resolveAuthConfig({ mode: 'tokens' as never })).toThrow(/auth mode/);
    expect(() => resolveAuthConfig({ mode: 'token', tokenTtlSeconds: 10 })).toThrow(/at least 60/);
    expect(() => resolveAuthConfig({ mode: 'token', externalIssuers: [{ issuer: 'x' }] })).toThrow(/publicKey or jwks/);
  });

  it('reads --auth-config and lets flags win', async () => {
    const dir = await tempDir();
    const file = join(dir, 'auth.yaml');
    await writeFile(file, 'mode: basic\nservice: from-file\nrules:\n  - users: [bob]\n    repositories: ["x/*"]\n    actions: [pull]\n');
    // The path `berth serve` takes: the file under the flags.
    const { auth } = loadConfig({ flags: { authConfig: file, tokenService: 'from-flag', anonymousPull: true }, env: {} });
    expect(auth).toMatchObject({ mode: 'basic', service: 'from-flag', anonymousPull: true });
    expect(resolveAuthConfig(auth).policy.rules).toHaveLength(1);
    expect(loadConfig({ flags: {}, env: {} }).auth.mode).toBe('none');
  });
});

describe('passwords', () => {
  it('hashes with a salt and verifies in constant time', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    expect(a).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('correct hors', a)).toBe(false);
    expect(await verifyPassword('correct horse', 'garbage')).toBe(false);
  });
});

describe('login throttle', () => {
  it('counts attempts per address and per account until the window passes; a success clears only its account', () => {
    let now = 1_000_000;
    const throttle = new LoginThrottle({ maxFailures: 3, windowSeconds: 60 }, () => now);
    // Three attempts begun (still in progress: counted already), the fourth refused.
    for (let i = 0; i < 3; i++) expect(typeof throttle.begin('1.2.3.4', `user${i}`)).toBe('object');
    expect(throttle.begin('1.2.3.4', 'user9')).toBe(60);
    expect(throttle.retryAfter('1.2.3.4', 'anyone')).toBe(60);
    expect(typeof throttle.begin('5.6.7.8', 'user0')).toBe('object');
    now += 61_000;
    // Per account, from several addresses.
    for (let i = 0; i < 3; i++) expect(typeof throttle.begin(`10.0.0.${i}`, 'alice')).toBe('object');
    expect(throttle.begin('10.0.0.9', 'alice')).toBe(60);
    now += 61_000;
    // A success clears its account and takes back its own attempt, not the address's failures.
    throttle.begin('1.2.3.4', 'bob');
    throttle.begin('1.2.3.4', 'bob');
    const ok = throttle.begin('1.2.3.4', 'carol');
    if (typeof ok === 'number') throw new Error('refused');
    ok.succeeded();
    expect(typeof throttle.begin('1.2.3.4', 'carol')).toBe('object');
    expect(throttle.begin('1.2.3.4', 'bob')).toBe(60);
  });
});

describe('signing key', () => {
  it('is created once, mode 0600, and reused', async () => {
    const dir = await tempDir();
    const first = loadOrCreateSigningKey(dir);
    const second = loadOrCreateSigningKey(dir);
    expect(second.kid).toBe(first.kid);
    expect((await stat(signingKeyPath(dir))).mode & 0o777).toBe(0o600);
  });
});

describe('user store', () => {
  it('adds, lists, changes passwords and removes users with their groups', async () => {
    const dir = await tempDir();
    const registry = await openRegistry(dir);
    try {
      const users = registry.users;
      await createUser(users, { name: 'alice', password: 'alice-password', admin: true, groups: ['ops', 'ci'] });
      await createUser(users, { name: 'bob', password: 'bob-password', admin: false, groups: [] });
      await expect(createUser(users, { name: 'bob', password: 'bob-password', admin: false, groups: [] })).rejects.toThrow(/exists/);
      await expect(createUser(users, { name: 'Bob', password: 'bob-password', admin: false, groups: [] })).rejects.toThrow(/invalid user name/);
      await expect(createUser(users, { name: 'carol', password: 'short', admin: false, groups: [] })).rejects.toThrow(/too short/);
      expect((await users.list()).map((u) => [u.name, u.admin, u.groups])).toEqual([
        ['alice', true, ['ci', 'ops']],
        ['bob', false, []],
      ]);
      const before = (await users.get('bob'))!.passwordHash;
      await changePassword(users, 'bob', 'new-bob-password');
      expect(await verifyPassword('new-bob-password', (await users.get('bob'))!.passwordHash)).toBe(true);
      expect((await users.get('bob'))!.passwordHash).not.toBe(before);
      expect(await users.remove('alice')).toBe(true);
      expect(await users.remove('alice')).toBe(false);
      const db = new Database(join(dir, 'registry.db'), { readonly: true });
      expect(db.prepare('SELECT count(*) AS n FROM user_groups').get()).toEqual({ n: 0 });
      db.close();
    } finally {
      await registry.close();
    }
  });
});
