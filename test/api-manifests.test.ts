// Manifests, tags, catalog and referrers, against a real server.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { errorCode, imageManifest, pushBlob, pushImage, putManifest, sha256, sha512, startTestServer, type TestServer } from './helpers/server.js';
import { REPLICA_RUN } from './helpers/replicas.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv.destroy();
});

const v2 = (path: string) => `${srv.url}/v2/${path}`;

/** Sends one request line exactly as written (no URL normalisation) and reads the answer. */
function rawRequest(method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(srv.url).port), '127.0.0.1', () => {
      socket.end(`${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [head = '', body = ''] = text.split('\r\n\r\n', 2);
      resolve({ status: Number(head.split(' ')[1]), body: decodeChunked(head, body) });
    });
  });
}

function decodeChunked(head: string, body: string): string {
  if (!/transfer-encoding: chunked/i.test(head)) return body;
  let out = '';
  for (let rest = body; ; ) {
    const eol = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, eol), 16);
    if (!size) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const EMPTY = Buffer.from('{}');

function put(repo: string, reference: string, body: Buffer | string, contentType = OCI_MANIFEST): Promise<Response> {
  return fetch(v2(`${repo}/manifests/${reference}`), { method: 'PUT', headers: { 'Content-Type': contentType }, body });
}

describe('manifest push and pull', () => {
  it('PUT by tag, then GET and HEAD by tag and digest return the exact bytes and media type', async () => {
    const img = await pushImage(srv.url, 'm/basic', 'v1', 'basic');
    const res = await fetch(v2('m/basic/manifests/v1'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(res.headers.get('docker-content-digest')).toBe(img.digest);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(img.manifest);
    const byDigest = await fetch(v2(`m/basic/manifests/${img.digest}`));
    expect(Buffer.from(await byDigest.arrayBuffer())).toEqual(img.manifest);
    const head = await fetch(v2('m/basic/manifests/v1'), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(img.manifest.length));
    expect(head.headers.get('docker-content-digest')).toBe(img.digest);
  });

  it('answers PUT with 201, Location and Docker-Content-Digest', async () => {
    const config = await pushBlob(srv.url, 'm/created', EMPTY);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 2 }, layers: [] }));
    const res = await put('m/created', 'latest', body);
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/v2/m/created/manifests/${sha256(body)}`);
    expect(res.headers.get('docker-content-digest')).toBe(sha256(body));
  });

  it('keeps whitespace and key order: the digest is of the bytes pushed', async () => {
    const config = await pushBlob(srv.url, 'm/bytes', EMPTY);
    const body = Buffer.from(`{\n  "schemaVersion": 2,\n  "mediaType": "${OCI_MANIFEST}",\n  "layers": [],\n  "config": {"size": 2, "digest": "${config}", "mediaType": "application/vnd.oci.image.config.v1+json"}\n}\n`);
    await put('m/bytes', 'pretty', body);
    const res = await fetch(v2('m/bytes/manifests/pretty'));
    expect(Buffer.from(await res.arrayBuffer())).toEqual(body);
  });

  it('PUT by digest with one or more ?tag= parameters tags it', async () => {
    const config = await pushBlob(srv.url, 'm/tagparam', EMPTY);
    const body = imageManifest(EMPTY, []);
    expect(config).toBe(sha256(EMPTY));
    const res = await fetch(v2(`m/tagparam/manifests/${sha256(body)}?tag=a&tag=b`), { method: 'PUT', headers: { 'Content-Type': OCI_MANIFEST }, body });
    expect(res.status).toBe(201);
    const tags = await (await fetch(v2('m/tagparam/tags/list'))).json();
    expect(tags).toEqual({ name: 'm/tagparam', tags: ['a', 'b'] });
  });

  it('PUT by a digest that does not match the body is DIGEST_INVALID', async () => {
    await pushBlob(srv.url, 'm/digest', EMPTY);
    const body = imageManifest(EMPTY, []);
    const res = await put('m/digest', sha256('something else'), body);
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('DIGEST_INVALID');
  });

  it('accepts a sha512 manifest digest', async () => {
    await pushBlob(srv.url, 'm/sha512', EMPTY);
    const body = imageManifest(EMPTY, []);
    const res = await put('m/sha512', sha512(body), body);
    expect(res.status).toBe(201);
    expect(res.headers.get('docker-content-digest')).toBe(sha512(body));
    expect((await fetch(v2(`m/sha512/manifests/${sha512(body)}`))).status).toBe(200);
  });

  it('moving a tag points it at the new manifest', async () => {
    const one = await pushImage(srv.url, 'm/move', 'latest', 'one');
    const two = await pushImage(srv.url, 'm/move', 'latest', 'two');
    const res = await fetch(v2('m/move/manifests/latest'), { method: 'HEAD' });
    expect(res.headers.get('docker-content-digest')).toBe(two.digest);
    expect((await fetch(v2(`m/move/manifests/${one.digest}`), { method: 'HEAD' })).status).toBe(200);
  });

  it('Docker schema 2 manifests and manifest lists', async () => {
    const config = Buffer.from('{"os":"linux","architecture":"arm64"}');
    const layer = Buffer.from('docker layer');
    await pushBlob(srv.url, 'm/docker', config);
    await pushBlob(srv.url, 'm/docker', layer);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: sha256(layer), size: layer.length }],
    }));
    expect((await put('m/docker', 'arm64', manifest, DOCKER_MANIFEST)).status).toBe(201);
    const list = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_LIST,
      manifests: [{ mediaType: DOCKER_MANIFEST, digest: sha256(manifest), size: manifest.length, platform: { os: 'linux', architecture: 'arm64' } }],
    }));
    expect((await put('m/docker', 'multi', list, DOCKER_LIST)).status).toBe(201);
    const res = await fetch(v2('m/docker/manifests/multi'));
    expect(res.headers.get('content-type')).toBe(DOCKER_LIST);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(list);
  });

  it('OCI index over pushed manifests; a missing child is MANIFEST_BLOB_UNKNOWN', async () => {
    const a = await pushImage(srv.url, 'm/index', 'amd64', 'amd64');
    const index = (children: string[]) => Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: children.map((digest) => ({ mediaType: OCI_MANIFEST, digest, size: digest === a.digest ? a.manifest.length : 100, platform: { os: 'linux', architecture: 'amd64' } })),
    }));
    expect((await put('m/index', 'multi', index([a.digest]), OCI_INDEX)).status).toBe(201);
    const missing = await put('m/index', 'broken', index([a.digest, sha256('not pushed')]), OCI_INDEX);
    expect(missing.status).toBe(400);
    expect(await errorCode(missing)).toBe('MANIFEST_BLOB_UNKNOWN');
    expect((await fetch(v2('m/index/manifests/broken'))).status).toBe(404);
  });

  it('OCI artifacts: artifactType, empty config, no layers, data and custom fields', async () => {
    await pushBlob(srv.url, 'm/artifact', EMPTY);
    const body = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.sbom',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(EMPTY), size: 2, data: 'e30=' },
      layers: [],
      annotations: { 'org.example': 'yes' },
      'x-custom-field': { anything: [1, 2, 3] },
    }));
    expect((await put('m/artifact', 'sbom', body)).status).toBe(201);
    expect(Buffer.from(await (await fetch(v2('m/artifact/manifests/sbom'))).arrayBuffer())).toEqual(body);
  });

  it('layers with urls (non-distributable) need not be in the registry', async () => {
    await pushBlob(srv.url, 'm/foreign', EMPTY);
    const body = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(EMPTY), size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', digest: sha256('elsewhere'), size: 9, urls: ['https://example.com/layer'] }],
    }));
    expect((await put('m/foreign', 'win', body)).status).toBe(201);
  });
});

describe('manifest refusals', () => {
  it('invalid JSON is MANIFEST_INVALID', async () => {
    const res = await put('m/bad', 'x', '{not json');
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('MANIFEST_INVALID');
  });

  // Not on replicas: the test's round-robin proxy cuts a client still sending when the replica answers early.
  it.skipIf(REPLICA_RUN)('a manifest over 4 MiB is refused with 413 and nothing is stored', async () => {
    await pushBlob(srv.url, 'm/huge', EMPTY);
    const body = imageManifest(EMPTY, [], { annotations: { pad: 'x'.repeat(4 * 1024 * 1024) } });
    const res = await put('m/huge', 'huge', body);
    expect(res.status).toBe(413);
    expect(await errorCode(res)).toBe('SIZE_INVALID');
    expect((await fetch(v2('m/huge/manifests/huge'))).status).toBe(404);
  });

  it('a mediaType that contradicts Content-Type is MANIFEST_INVALID', async () => {
    await pushBlob(srv.url, 'm/mismatch', EMPTY);
    const res = await put('m/mismatch', 'x', imageManifest(EMPTY, []), OCI_INDEX);
    expect(await errorCode(res)).toBe('MANIFEST_INVALID');
  });

  it('a missing config or layer is MANIFEST_BLOB_UNKNOWN, also when it lives in another repository', async () => {
    const layer = Buffer.from('only in another repo');
    await pushBlob(srv.url, 'm/other', layer);
    await pushBlob(srv.url, 'm/missing', EMPTY);
    const res = await put('m/missing', 'x', imageManifest(EMPTY, [layer]));
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('MANIFEST_BLOB_UNKNOWN');
    const noConfig = await put('m/missing', 'y', imageManifest(Buffer.from('no such config'), []));
    expect(await errorCode(noConfig)).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('Docker schema 1 is refused with a clear message', async () => {
    const res = await put('m/schema1', 'old', JSON.stringify({ schemaVersion: 1, name: 'm/schema1', tag: 'old', fsLayers: [] }), 'application/vnd.docker.distribution.manifest.v1+prettyjws');
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('MANIFEST_INVALID');
    expect(body.errors[0]!.message).toMatch(/schema 1/);
  });

  it('descriptors with bad digests or sizes, and unknown media types, are MANIFEST_INVALID', async () => {
    await pushBlob(srv.url, 'm/desc', EMPTY);
    const bad = (config: object) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [] }));
    expect(await errorCode(await put('m/desc', 'a', bad({ mediaType: 'x/y', digest: 'sha256:nothex', size: 2 })))).toBe('MANIFEST_INVALID');
    expect(await errorCode(await put('m/desc', 'b', bad({ mediaType: 'x/y', digest: sha256(EMPTY), size: -1 })))).toBe('MANIFEST_INVALID');
    expect(await errorCode(await put('m/desc', 'c', '{"schemaVersion":2,"mediaType":"text/plain"}', 'text/plain'))).toBe('MANIFEST_INVALID');
  });

  it('an invalid tag is refused', async () => {
    await pushBlob(srv.url, 'm/tagname', EMPTY);
    const res = await put('m/tagname', '-bad', imageManifest(EMPTY, []));
    expect(res.status).toBe(400);
  });

  it('unknown manifests are MANIFEST_UNKNOWN', async () => {
    const byTag = await fetch(v2('m/basic/manifests/nope'));
    expect(byTag.status).toBe(404);
    expect(await errorCode(byTag)).toBe('MANIFEST_UNKNOWN');
    const byDigest = await fetch(v2(`m/basic/manifests/${sha256('nope')}`));
    expect(await errorCode(byDigest)).toBe('MANIFEST_UNKNOWN');
  });
});

describe('manifest and tag deletion', () => {
  it('DELETE by tag removes the tag only', async () => {
    const img = await pushImage(srv.url, 'm/deltag', 'gone', 'deltag');
    const res = await fetch(v2('m/deltag/manifests/gone'), { method: 'DELETE' });
    expect(res.status).toBe(202);
    expect((await fetch(v2('m/deltag/manifests/gone'))).status).toBe(404);
    expect((await fetch(v2(`m/deltag/manifests/${img.digest}`))).status).toBe(200);
  });

  it('DELETE by digest removes the manifest and its tags', async () => {
    const img = await pushImage(srv.url, 'm/deldigest', 'v1', 'deldigest');
    const res = await fetch(v2(`m/deldigest/manifests/${img.digest}`), { method: 'DELETE' });
    expect(res.status).toBe(202);
    expect((await fetch(v2(`m/deldigest/manifests/${img.digest}`))).status).toBe(404);
    expect((await fetch(v2('m/deldigest/manifests/v1'))).status).toBe(404);
    const again = await fetch(v2(`m/deldigest/manifests/${img.digest}`), { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect(await errorCode(again)).toBe('MANIFEST_UNKNOWN');
  });
});

describe('tags list and catalog', () => {
  beforeAll(async () => {
    for (const tag of ['c', 'a', 'e', 'b', 'd']) await pushImage(srv.url, 'list/tags', tag, 'tags');
  });

  it('lists tags sorted', async () => {
    const res = await fetch(v2('list/tags/tags/list'));
    expect(await res.json()).toEqual({ name: 'list/tags', tags: ['a', 'b', 'c', 'd', 'e'] });
    expect(res.headers.get('link')).toBeNull();
  });

  it('paginates tags with n, last and a Link header', async () => {
    const first = await fetch(v2('list/tags/tags/list?n=2'));
    expect(await first.json()).toEqual({ name: 'list/tags', tags: ['a', 'b'] });
    expect(first.headers.get('link')).toBe('</v2/list/tags/tags/list?n=2&last=b>; rel="next"');
    const second = await fetch(v2('list/tags/tags/list?n=2&last=b'));
    expect(((await second.json()) as { tags: string[] }).tags).toEqual(['c', 'd']);
    const last = await fetch(v2('list/tags/tags/list?n=2&last=d'));
    expect(((await last.json()) as { tags: string[] }).tags).toEqual(['e']);
    expect(last.headers.get('link')).toBeNull();
  });

  it('an unknown repository is NAME_UNKNOWN', async () => {
    const res = await fetch(v2('list/never/tags/list'));
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe('NAME_UNKNOWN');
  });

  it('the catalog is sorted and paginated, and lists only repositories with manifests', async () => {
    const own = await startTestServer();
    try {
      for (const repo of ['zeta', 'alpha', 'mid/one', 'beta']) await pushImage(own.url, repo, 'latest', repo);
      await pushBlob(own.url, 'blobs-only', 'no manifest here');
      const all = await (await fetch(`${own.url}/v2/_catalog`)).json();
      expect(all).toEqual({ repositories: ['alpha', 'beta', 'mid/one', 'zeta'] });
      const first = await fetch(`${own.url}/v2/_catalog?n=2`);
      expect(await first.json()).toEqual({ repositories: ['alpha', 'beta'] });
      expect(first.headers.get('link')).toBe('</v2/_catalog?n=2&last=beta>; rel="next"');
      const second = await fetch(`${own.url}/v2/_catalog?n=2&last=beta`);
      expect(await second.json()).toEqual({ repositories: ['mid/one', 'zeta'] });
      const bad = await fetch(`${own.url}/v2/_catalog?n=-1`);
      expect(bad.status).toBe(400);
    } finally {
      await own.destroy();
    }
  });
});

describe('referrers', () => {
  it('lists referrers, filters by artifactType, and answers OCI-Subject on the PUT', async () => {
    const subject = await pushImage(srv.url, 'ref/app', 'v1', 'subject');
    await pushBlob(srv.url, 'ref/app', EMPTY);
    const referrer = (artifactType: string, note: string) => Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(EMPTY), size: 2 },
      layers: [],
      subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.manifest.length },
      annotations: { note },
    }));
    const sig = referrer('application/vnd.example.signature', 'sig');
    const sbom = referrer('application/vnd.example.sbom', 'sbom');
    const res = await put('ref/app', sha256(sig), sig);
    expect(res.headers.get('oci-subject')).toBe(subject.digest);
    await put('ref/app', sha256(sbom), sbom);

    const all = await fetch(v2(`ref/app/referrers/${subject.digest}`));
    expect(all.status).toBe(200);
    expect(all.headers.get('content-type')).toBe(OCI_INDEX);
    expect(all.headers.get('oci-filters-applied')).toBeNull();
    const index = (await all.json()) as { manifests: { digest: string; artifactType: string; annotations: Record<string, string>; size: number }[] };
    expect(index.manifests.map((m) => m.digest).sort()).toEqual([sha256(sig), sha256(sbom)].sort());
    expect(index.manifests.find((m) => m.digest === sha256(sig))).toMatchObject({ artifactType: 'application/vnd.example.signature', annotations: { note: 'sig' }, size: sig.length });

    const filtered = await fetch(v2(`ref/app/referrers/${subject.digest}?artifactType=application/vnd.example.sbom`));
    expect(filtered.headers.get('oci-filters-applied')).toBe('artifactType');
    expect(((await filtered.json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest)).toEqual([sha256(sbom)]);
  });

  it('accepts a referrer whose subject is not (yet) in the registry, and lists it', async () => {
    await pushBlob(srv.url, 'ref/early', EMPTY);
    const absent = sha256('subject pushed later');
    const body = imageManifest(EMPTY, [], { artifactType: 'application/vnd.example.early', subject: { mediaType: OCI_MANIFEST, digest: absent, size: 10 } });
    const res = await put('ref/early', sha256(body), body);
    expect(res.status).toBe(201);
    expect(res.headers.get('oci-subject')).toBe(absent);
    const list = (await (await fetch(v2(`ref/early/referrers/${absent}`))).json()) as { manifests: { digest: string }[] };
    expect(list.manifests.map((m) => m.digest)).toEqual([sha256(body)]);
  });

  it('answers an empty index for a subject without referrers, and 400 for a bad digest', async () => {
    const res = await fetch(v2(`ref/none/referrers/${sha256('lonely')}`));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { manifests: unknown[] }).manifests).toEqual([]);
    const bad = await fetch(v2('ref/none/referrers/sha256:zz'));
    expect(bad.status).toBe(400);
  });
});

describe('names and paths', () => {
  it.each([
    ['uppercase', 'Upper/case'],
    ['double separators', 'a..b'],
    ['leading separator', '-a'],
    ['trailing slash component', 'a//b'],
  ])('refuses %s with NAME_INVALID', async (_what, name) => {
    const res = await fetch(v2(`${name}/blobs/uploads/`), { method: 'POST' });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('NAME_INVALID');
  });

  it('refuses names over 255 characters', async () => {
    const res = await fetch(v2(`${'a'.repeat(256)}/tags/list`));
    expect(await errorCode(res)).toBe('NAME_INVALID');
  });

  it('path tricks never reach outside the data directory', async () => {
    // Raw request lines: fetch() would normalise `..` away before the server saw it.
    const tricks: [string, string][] = [
      ['POST', '/v2/../../etc/passwd/blobs/uploads/'],
      ['GET', '/v2/a/blobs/../../registry.db'],
      ['GET', '/v2/a/../../../etc/passwd/manifests/latest'],
      ['POST', '/v2/a/%2e%2e/%2e%2e/blobs/uploads/'],
      ['GET', '/v2/a/blobs/..%2f..%2fregistry.db'],
      ['GET', '/v2/a/blobs/sha256:..%2f..%2f..%2fregistry.db'],
      ['GET', '/v2/a/blobs/uploads/..%2f..%2fregistry.db'],
      ['GET', '/v2/a/blobs/uploads/../../registry.db'],
    ];
    for (const [method, path] of tricks) {
      const { status, body } = await rawRequest(method, path);
      expect([400, 404], `${method} ${path}`).toContain(status);
      expect(JSON.parse(body).errors[0].code, `${method} ${path}`).toMatch(/^(NAME_INVALID|NAME_UNKNOWN|DIGEST_INVALID|BLOB_UNKNOWN|BLOB_UPLOAD_UNKNOWN|MANIFEST_UNKNOWN|UNSUPPORTED)$/);
    }
    const traversal = await rawRequest('GET', '/v2/a/blobs/sha256:..%2f..%2f..%2fregistry.db');
    expect(JSON.parse(traversal.body).errors[0].code).toBe('DIGEST_INVALID');
  });

  it('unknown endpoints are 404 and wrong methods 405, in the spec error format', async () => {
    const unknown = await fetch(v2('a/b/unknown/thing'));
    expect(unknown.status).toBe(404);
    const wrong = await fetch(v2('a/manifests/latest'), { method: 'POST' });
    expect(wrong.status).toBe(405);
    expect(await errorCode(wrong)).toBe('UNSUPPORTED');
  });
});
