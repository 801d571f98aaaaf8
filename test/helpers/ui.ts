// For the web UI's tests: a cookie-keeping HTTP client that submits forms the way a
// browser does (with the CSRF cookie's value in `_csrf`), and images with a config of
// the test's choosing (labels, env, entrypoint).

import { imageManifest, pushBlob, putManifest, sha256 } from './server.js';

export class PageClient {
  readonly cookies = new Map<string, string>();

  constructor(readonly base: string) {}

  private cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  /** The Set-Cookie headers of the last response, raw (to check their attributes). */
  lastSetCookie: string[] = [];

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0) headers.set('cookie', this.cookieHeader());
    const res = await fetch(`${this.base}${path}`, { ...init, headers, redirect: 'manual' });
    this.lastSetCookie = res.headers.getSetCookie();
    for (const line of this.lastSetCookie) {
      const [pair, ...attributes] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (value === '' || attributes.some((a) => /max-age=0/i.test(a.trim()))) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  async page(path: string): Promise<{ status: number; html: string; res: Response }> {
    const res = await this.request(path);
    return { status: res.status, html: await res.text(), res };
  }

  /** POSTs a form as the UI's pages do: urlencoded, with the CSRF token unless `csrf` is given. */
  async submit(path: string, fields: Record<string, string>, csrf?: string): Promise<Response> {
    if (!this.cookies.has('berth_csrf')) await this.request('/');
    const body = new URLSearchParams({ _csrf: csrf ?? this.cookies.get('berth_csrf') ?? '', ...fields });
    return this.request(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
  }

  async signIn(username: string, password: string): Promise<Response> {
    return this.submit('/-/login', { username, password, next: '/' });
  }
}

export interface ConfiguredImage {
  digest: string;
  manifest: Buffer;
  config: Buffer;
  layers: Buffer[];
}

/** Pushes an image whose config carries `config` (labels, env...) and `layers` of the given sizes. */
export async function pushConfiguredImage(
  url: string,
  repo: string,
  tag: string,
  config: Record<string, unknown>,
  layerSizes: number[] = [100, 2000],
): Promise<ConfiguredImage> {
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', ...config }));
  const layers = layerSizes.map((size, i) => Buffer.alloc(size, `${repo}:${tag}:${i}:${JSON.stringify(config)}`));
  await pushBlob(url, repo, configBytes);
  for (const layer of layers) await pushBlob(url, repo, layer);
  const manifest = imageManifest(configBytes, layers);
  await putManifest(url, repo, tag, manifest);
  return { digest: sha256(manifest), manifest, config: configBytes, layers };
}
