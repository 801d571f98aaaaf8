// Where credentials come from: berth's own login store first, then the `auths` of
// docker's config.json (as `docker login` writes them: base64 `user:password` in
// `auth`, or an `identitytoken`). Both files have the same shape, so a user can copy
// entries either way. Credential helpers (`credsStore`) are not run.
//
// Locations: $BERTH_AUTH_FILE (a file) or ~/.config/berth/auth.json; $DOCKER_CONFIG/config.json
// or ~/.docker/config.json.

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
  [key: string]: unknown;
}

export function berthAuthPath(): string {
  return process.env.BERTH_AUTH_FILE ?? join(homedir(), '.config', 'berth', 'auth.json');
}

export function dockerConfigPath(): string {
  return join(process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
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

/** The credentials stored for a registry (`host[:port]`), or undefined. */
export async function findCredentials(registry: string): Promise<Credentials | undefined> {
  for (const path of [berthAuthPath(), dockerConfigPath()]) {
    const { auths = {} } = await readAuthFile(path);
    for (const key of keysFor(registry)) {
      const entry = auths[key];
      const creds = entry && decode(entry);
      if (creds) return creds;
    }
  }
  return undefined;
}

async function writeAuthFile(path: string, file: AuthFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // Write then rename so a crash never leaves half a file; 0600 since it holds passwords.
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}

/** Saves credentials in berth's store (not docker's). */
export async function saveCredentials(registry: string, creds: { username: string; password: string }): Promise<string> {
  const path = berthAuthPath();
  const file = await readAuthFile(path);
  file.auths = { ...file.auths, [registry]: { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') } };
  await writeAuthFile(path, file);
  return path;
}

/** Removes a registry from berth's store; false when there was nothing to remove. */
export async function removeCredentials(registry: string): Promise<boolean> {
  const path = berthAuthPath();
  const file = await readAuthFile(path);
  if (!file.auths?.[registry]) return false;
  delete file.auths[registry];
  await writeAuthFile(path, file);
  return true;
}
