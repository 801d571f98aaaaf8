// Where credentials come from, in the order podman looks (the first file with an entry
// for the registry wins):
//
//   1. --authfile FILE (ClientOptions.authfile), when given
//   2. $REGISTRY_AUTH_FILE
//   3. ${XDG_RUNTIME_DIR}/containers/auth.json   (podman login, skopeo login)
//   4. ~/.config/containers/auth.json
//   5. docker's config.json ($DOCKER_CONFIG/config.json or ~/.docker/config.json),
//      with its credential helpers: `credHelpers[registry]` or `credsStore`, run as
//      `docker-credential-<name> get` with the server on stdin, as docker does
//   6. berth's own file ($BERTH_AUTH_FILE or ~/.config/berth/auth.json), from older releases
//
// All are the same JSON shape (`auths` keyed by host, base64 `user:password` in `auth`, or
// an `identitytoken`). `berth login` writes where docker does (config.json, or its
// credential helper), or to --authfile.

import { execFile } from 'node:child_process';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { DOCKER_HUB } from './reference.js';

export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token endpoint. */
  identityToken?: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface AuthFile {
  auths?: Record<string, AuthEntry>;
  /** docker: the helper for every registry. */
  credsStore?: string;
  /** docker: helpers per registry. */
  credHelpers?: Record<string, string>;
  [key: string]: unknown;
}

export interface CredentialsLookup {
  /** A file to read first (and the only one `berth login --authfile` writes). */
  authfile?: string;
}

export function berthAuthPath(): string {
  return process.env.BERTH_AUTH_FILE ?? join(homedir(), '.config', 'berth', 'auth.json');
}

export function dockerConfigPath(): string {
  return join(process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
}

/** The auth files podman and skopeo read, in their order (docker's and berth's come after). */
function containersAuthPaths(): string[] {
  const paths: string[] = [];
  if (process.env.REGISTRY_AUTH_FILE) paths.push(process.env.REGISTRY_AUTH_FILE);
  if (process.env.XDG_RUNTIME_DIR) paths.push(join(process.env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  paths.push(join(process.env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'containers', 'auth.json'));
  return paths;
}

async function readAuthFile(path: string): Promise<AuthFile> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as AuthFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`cannot read credentials from ${path}: ${(err as Error).message}`);
  }
}

/** The keys an `auths` map may use for a registry (docker keys Docker Hub by its v1 URL). */
function keysFor(registry: string): string[] {
  const keys = [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v2/`, `https://${registry}/v1/`];
  if (registry === DOCKER_HUB) keys.push('https://index.docker.io/v1/', 'index.docker.io', 'registry-1.docker.io');
  return keys;
}

function decode(entry: AuthEntry): Credentials | undefined {
  if (entry.identitytoken) return { identityToken: entry.identitytoken, username: entry.username };
  if (entry.auth) {
    const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon < 0) return undefined;
    return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
  }
  if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  return undefined;
}

function entryFor(file: AuthFile, registry: string): Credentials | undefined {
  for (const key of keysFor(registry)) {
    const entry = file.auths?.[key];
    const creds = entry && decode(entry);
    if (creds) return creds;
  }
  return undefined;
}

/** The server name a credential helper knows a registry by (docker's v1 URL for Docker Hub). */
const helperServer = (registry: string) => (registry === DOCKER_HUB ? 'https://index.docker.io/v1/' : registry);

function helperFor(file: AuthFile, registry: string): string | undefined {
  return file.credHelpers?.[registry] ?? file.credsStore;
}

/** Runs `docker-credential-<helper> <action>` with `input` on stdin; resolves stdout. */
function runHelper(helper: string, action: 'get' | 'store' | 'erase', input: string): Promise<string> {
  const command = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = execFile(command, [action], { timeout: 30_000, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const detail = (stdout || stderr || err.message).trim();
      // A helper that is not installed (a config.json copied from another machine) knows nothing.
      const notFound = /credentials not found/i.test(detail) || (err as NodeJS.ErrnoException).code === 'ENOENT';
      reject(Object.assign(new Error(`${command} ${action}: ${detail}`), { notFound }));
    });
    child.stdin!.end(input);
  });
}

async function helperCredentials(helper: string, registry: string): Promise<Credentials | undefined> {
  try {
    const out = JSON.parse(await runHelper(helper, 'get', helperServer(registry))) as { Username?: string; Secret?: string };
    if (!out.Secret) return undefined;
    // docker stores an identity token with the user name `<token>`.
    return out.Username === '<token>' ? { identityToken: out.Secret } : { username: out.Username, password: out.Secret };
  } catch (err) {
    if ((err as { notFound?: boolean }).notFound) return undefined;
    throw err;
  }
}

/** The credentials stored for a registry (`host[:port]`), or undefined. */
export async function findCredentials(registry: string, lookup: CredentialsLookup = {}): Promise<Credentials | undefined> {
  for (const path of [...(lookup.authfile ? [lookup.authfile] : []), ...containersAuthPaths()]) {
    const creds = entryFor(await readAuthFile(path), registry);
    if (creds) return creds;
  }
  const docker = await readAuthFile(dockerConfigPath());
  const helper = helperFor(docker, registry);
  const fromDocker = helper ? await helperCredentials(helper, registry) : entryFor(docker, registry);
  return fromDocker ?? entryFor(await readAuthFile(berthAuthPath()), registry);
}

async function writeAuthFile(path: string, file: AuthFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // Write then rename so a crash never leaves half a file; 0600 since it holds passwords.
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}

/**
 * Saves credentials where docker does (config.json, or its credential helper when it has
 * one), or in `authfile`. Returns where they went.
 */
export async function saveCredentials(registry: string, creds: { username: string; password: string }, lookup: CredentialsLookup = {}): Promise<string> {
  const path = lookup.authfile ?? dockerConfigPath();
  const file = await readAuthFile(path);
  const helper = lookup.authfile ? undefined : helperFor(file, registry);
  if (helper) {
    await runHelper(helper, 'store', JSON.stringify({ ServerURL: helperServer(registry), Username: creds.username, Secret: creds.password }));
    return `docker-credential-${helper}`;
  }
  file.auths = { ...file.auths, [registry]: { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') } };
  await writeAuthFile(path, file);
  return path;
}

/**
 * Removes a registry's credentials from where `berth login` saves them (and from berth's
 * own file of older releases); false when there was nothing to remove.
 */
export async function removeCredentials(registry: string, lookup: CredentialsLookup = {}): Promise<boolean> {
  let removed = false;
  const primary = lookup.authfile ?? dockerConfigPath();
  for (const path of primary === berthAuthPath() ? [primary] : [primary, berthAuthPath()]) {
    const file = await readAuthFile(path);
    const helper = path === dockerConfigPath() && !lookup.authfile ? helperFor(file, registry) : undefined;
    if (helper) {
      removed = await runHelper(helper, 'erase', helperServer(registry)).then(
        () => true,
        (err: unknown) => {
          if ((err as { notFound?: boolean }).notFound) return removed;
          throw err;
        },
      );
    }
    const key = keysFor(registry).find((k) => file.auths?.[k]);
    if (!key) continue;
    delete file.auths![key];
    await writeAuthFile(path, file);
    removed = true;
  }
  return removed;
}
