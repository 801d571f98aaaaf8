// The client's Bearer flow against the reference registry configured for token auth
// (the Docker token spec as CNCF distribution implements it), with a small token
// service written here: it checks Basic credentials, grants what is asked, and counts
// requests so the test can see tokens being cached per scope and refreshed on expiry.

import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { importPKCS8, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  copy,
  copyImage,
  LayoutSource,
  OciLayout,
  pull,
  push,
  RegistryClient,
  RegistryDestination,
  RegistryHttpError,
} from '../src/client/index.js';
import { buildBusyboxImage, e2eTools, tempDir, type BuiltManifestImage } from './helpers/images.js';
import { startReferenceRegistry, type ReferenceRegistry } from './helpers/reference-registry.js';

const run = promisify(execFile);
const SERVICE = 'test-registry';
const ISSUER = 'test-token-issuer';
const USER = 'dora';
const PASSWORD = 'dora-password';

interface TokenService {
  realm: string;
  /** The scopes of every token request, in order (space-joined, '' for none). */
  requests: string[];
  /** Lifetime the responses announce (the JWT itself lives longer, so the registry accepts it). */
  expiresIn: number;
  server: Server;
}

async function startTokenService(dir: string): Promise<TokenService> {
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=berth-test-token',
  ]);
  const key = await importPKCS8(await readFile(join(dir, 'key.pem'), 'utf8'), 'ES256');
  const certDer = (await readFile(join(dir, 'cert.pem'), 'utf8')).replace(/-----[^-]+-----|\s/g, '');
  const svc = { requests: [] as string[], expiresIn: 300 } as TokenService;
  svc.server = createServer(async (req, res) => {
    const url = new URL(req.url!, 'http://x');
    const scopes = url.searchParams.getAll('scope');
    svc.requests.push(scopes.join(' '));
    const expected = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
    if (req.headers.authorization !== expected || url.searchParams.get('service') !== SERVICE) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
      return;
    }
    const access = scopes.flatMap((s) => {
      const [type, name, actions] = [s.slice(0, s.indexOf(':')), s.slice(s.indexOf(':') + 1, s.lastIndexOf(':')), s.slice(s.lastIndexOf(':') + 1)];
      return [{ type, name, actions: actions.split(',') }];
    });
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: 'ES256', x5c: [certDer] })
      .setIssuer(ISSUER)
      .setAudience(SERVICE)
      .setSubject(USER)
      .setIssuedAt()
      .setNotBefore('-10s')
      .setExpirationTime('10m')
      .setJti(String(svc.requests.length))
      .sign(key);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: svc.expiresIn }));
  });
  await new Promise<void>((r) => svc.server.listen(0, '127.0.0.1', r));
  svc.realm = `http://127.0.0.1:${(svc.server.address() as { port: number }).port}/token`;
  return svc;
}

describe.skipIf(!e2eTools('docker-registry', 'umoci', 'openssl'))('Bearer token flow against the reference registry', () => {
  let work: string;
  let tokens: TokenService;
  let reg: ReferenceRegistry;
  let image: BuiltManifestImage;

  beforeAll(async () => {
    work = await tempDir('berth-client-auth-');
    tokens = await startTokenService(work);
    reg = await startReferenceRegistry({
      extraConfig: [
        'auth:',
        '  token:',
        `    realm: ${tokens.realm}`,
        `    service: ${SERVICE}`,
        `    issuer: ${ISSUER}`,
        `    rootcertbundle: ${join(work, 'cert.pem')}`,
      ].join('\n'),
    });
    image = await buildBusyboxImage(join(work, 'layout'));
  });
  afterAll(async () => {
    await reg?.close();
    tokens?.server.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const creds = { username: USER, password: PASSWORD };

  it('is refused without credentials, with a message that says to log in', async () => {
    const err = await push(image.layout, `${reg.host}/team/app:1`, { credentials: null }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryHttpError);
    expect((err as Error).message).toContain(`401 from ${reg.host}: run \`berth login ${reg.host}\``);
    const wrong = await push(image.layout, `${reg.host}/team/app:1`, { credentials: { username: USER, password: 'x' } }).catch((e: unknown) => e);
    expect((wrong as Error).message).toContain(`the credentials for ${reg.host} were refused`);
  });

  it('pushes and pulls with one token per scope set, reused while fresh', async () => {
    tokens.requests.length = 0;
    const client = new RegistryClient(reg.host, { credentials: creds });
    // Through one client: the token for push on team/app is fetched once and reused.
    const result = await copyImage(new LayoutSource(await OciLayout.open(image.layout)), '', new RegistryDestination(client, 'team/app'), '1', { concurrency: 1 });
    expect(result.digest).toBe(image.digest);
    expect(tokens.requests).toEqual(['repository:team/app:pull,push']);

    await client.tags('team/app');
    await client.tags('team/app');
    expect(tokens.requests).toEqual(['repository:team/app:pull,push', 'repository:team/app:pull']);

    const pulled = await pull(`${reg.host}/team/app:1`, join(work, 'pulled'), { credentials: creds });
    expect(pulled.digest).toBe(image.digest);
  });

  it('asks for a new token once the old one has expired', async () => {
    tokens.requests.length = 0;
    tokens.expiresIn = 11; // the client renews 10 s before expiry: stale after about a second
    try {
      const client = new RegistryClient(reg.host, { credentials: creds });
      await client.tags('team/app');
      await client.tags('team/app');
      expect(tokens.requests).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 1200));
      await client.tags('team/app');
      expect(tokens.requests).toEqual(['repository:team/app:pull', 'repository:team/app:pull']);
    } finally {
      tokens.expiresIn = 300;
    }
  });

  it('mounts across repositories with a token that covers both', async () => {
    tokens.requests.length = 0;
    const result = await copy(`${reg.host}/team/app:1`, `${reg.host}/other/app:1`, { credentials: creds, concurrency: 1 });
    expect(result.digest).toBe(image.digest);
    expect(tokens.requests).toContain('repository:other/app:pull,push repository:team/app:pull');
  });

  it('lists the catalog with a registry:catalog:* token', async () => {
    const repos = await new RegistryClient(reg.host, { credentials: creds }).catalog();
    expect(repos).toEqual(expect.arrayContaining(['team/app', 'other/app']));
  });
});
