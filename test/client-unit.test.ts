// Unit tests of the client's parsing: references, auth challenges and scopes, platforms.

import { describe, expect, it } from 'vitest';
import { parseChallenge, scopesCover } from '../src/client/auth.js';
import { isLoopback, parseImageLocation, parseReference, pickPlatform, RegistryClient } from '../src/client/index.js';

describe('parseReference', () => {
  it('splits host, port, repository, tag and digest', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(parseReference('127.0.0.1:5000/team/app:1.0')).toEqual({ registry: '127.0.0.1:5000', repository: 'team/app', tag: '1.0', digest: undefined });
    expect(parseReference(`localhost/app@${digest}`)).toEqual({ registry: 'localhost', repository: 'app', tag: undefined, digest });
    expect(parseReference(`reg.example.com/a/b:t@${digest}`)).toMatchObject({ registry: 'reg.example.com', repository: 'a/b', tag: 't', digest });
    expect(parseReference('127.0.0.1:5000/app')).toMatchObject({ tag: 'latest' });
    expect(parseReference('127.0.0.1:5000/app', { defaultTag: null }).tag).toBeUndefined();
  });

  it('puts names without a host on Docker Hub, single names under library/', () => {
    expect(parseReference('busybox')).toMatchObject({ registry: 'docker.io', repository: 'library/busybox', tag: 'latest' });
    expect(parseReference('someone/tool:2')).toMatchObject({ registry: 'docker.io', repository: 'someone/tool', tag: '2' });
    expect(new RegistryClient('docker.io').baseUrl).toBe('https://registry-1.docker.io');
  });

  it('rejects what the distribution grammar rejects, naming the fix', () => {
    expect(() => parseReference('127.0.0.1:5000/Upper/case')).toThrow(/invalid repository name.*repository names are lowercase \(upper\/case\)/);
    expect(() => parseReference('127.0.0.1:5000/app:-bad')).toThrow(/invalid tag/);
    expect(() => parseReference('127.0.0.1:5000/app@sha256')).toThrow(/invalid digest/);
  });

  it('says what is wrong with an empty tag or a registry without a repository', () => {
    expect(() => parseReference('127.0.0.1:5000/app:')).toThrow('empty tag in 127.0.0.1:5000/app:: remove the trailing colon or name a tag');
    expect(() => parseReference('127.0.0.1:5010')).toThrow('127.0.0.1:5010 names a registry but no repository: write 127.0.0.1:5010/REPOSITORY[:TAG]');
    expect(() => parseReference('registry.example.com/')).toThrow(/names a registry but no repository/);
    expect(() => parseReference('registry.example.com')).toThrow(/names a registry but no repository/);
    expect(parseReference('localhost:5000/app')).toMatchObject({ registry: 'localhost:5000', repository: 'app' });
  });

  it('knows loopback registries (the ones that may fall back to plain HTTP)', () => {
    expect(isLoopback('127.0.0.1:5000')).toBe(true);
    expect(isLoopback('localhost')).toBe(true);
    expect(isLoopback('[::1]:5000')).toBe(true);
    expect(isLoopback('10.0.0.1:5000')).toBe(false);
    // HTTPS first, everywhere: plain HTTP only after a loopback or insecure registry refused TLS.
    expect(new RegistryClient('reg.example.com').baseUrl).toBe('https://reg.example.com');
    expect(new RegistryClient('127.0.0.1:5999').baseUrl).toBe('https://127.0.0.1:5999');
  });
});

describe('parseImageLocation (skopeo transports)', () => {
  it('reads docker://, oci:, oci-archive: and docker-archive:, a bare reference as docker://', () => {
    expect(parseImageLocation('docker://127.0.0.1:5000/app:1')).toMatchObject({ transport: 'docker', ref: { registry: '127.0.0.1:5000', repository: 'app', tag: '1' } });
    expect(parseImageLocation('127.0.0.1:5000/app')).toMatchObject({ transport: 'docker', ref: { tag: 'latest' } });
    expect(parseImageLocation('oci:./app:latest')).toEqual({ transport: 'oci', path: './app', tag: 'latest' });
    expect(parseImageLocation('oci:/srv/app')).toEqual({ transport: 'oci', path: '/srv/app', tag: undefined });
    expect(parseImageLocation('oci-archive:app.tar:v1')).toEqual({ transport: 'oci-archive', path: 'app.tar', tag: 'v1' });
    expect(parseImageLocation('docker-archive:./app.tar:example/app:1')).toEqual({ transport: 'docker-archive', path: './app.tar', name: 'example/app:1' });
  });

  it('takes a bare path as a layout (or a .tar as a docker archive) where a path is expected', () => {
    expect(parseImageLocation('./busybox', { pathDefault: true })).toEqual({ transport: 'oci', path: './busybox' });
    expect(parseImageLocation('/tmp/app.tar', { pathDefault: true })).toEqual({ transport: 'docker-archive', path: '/tmp/app.tar' });
  });

  it('names the fix for an empty tag and a transport berth does not have', () => {
    expect(() => parseImageLocation('oci:./app:')).toThrow('empty tag in oci:./app:: remove the trailing colon or name a tag');
    expect(() => parseImageLocation('containers-storage:app')).toThrow(/does not read or write the containers-storage transport/);
    expect(() => parseImageLocation('docker:app')).toThrow(/docker:\/\/HOST\/REPO/);
  });
});

describe('auth challenges', () => {
  it('parses Bearer and Basic challenges with quoted parameters', () => {
    expect(parseChallenge('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"')).toEqual({
      scheme: 'bearer',
      realm: 'https://auth.example.com/token',
      service: 'registry.example.com',
      scope: 'repository:a/b:pull,push',
    });
    expect(parseChallenge('Bearer realm="r",error="insufficient_scope"')).toMatchObject({ error: 'insufficient_scope' });
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic', realm: 'Registry Realm' });
    expect(parseChallenge('Negotiate')).toBeUndefined();
    expect(parseChallenge(null)).toBeUndefined();
  });

  it('knows when the scopes asked for already cover a challenge', () => {
    expect(scopesCover(['repository:a/b:pull,push'], 'repository:a/b:pull')).toBe(true);
    expect(scopesCover(['repository:a/b:pull'], 'repository:a/b:push')).toBe(false);
    expect(scopesCover(['repository:a/b:pull'], 'repository:a/c:pull')).toBe(false);
    expect(scopesCover(['registry:catalog:*'], 'registry:catalog:*')).toBe(true);
  });
});

describe('pickPlatform', () => {
  const entry = (os: string, architecture: string, variant?: string) => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${(os + architecture + (variant ?? '')).padEnd(64, '0').slice(0, 64).replace(/[^a-f0-9]/g, '0')}`,
    size: 1,
    platform: { os, architecture, ...(variant ? { variant } : {}) },
  });
  const list = [entry('linux', 'amd64'), entry('linux', 'arm', 'v7'), entry('linux', 'arm64', 'v8'), { mediaType: 'x', digest: 'sha256:0', size: 1 }];

  it('matches os, architecture and variant, treating arm64 and arm64/v8 alike', () => {
    expect(pickPlatform(list, { os: 'linux', architecture: 'amd64' })).toBe(list[0]);
    expect(pickPlatform(list, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(list[1]);
    expect(pickPlatform(list, { os: 'linux', architecture: 'arm', variant: 'v6' })).toBeUndefined();
    expect(pickPlatform(list, { os: 'linux', architecture: 'arm64' })).toBe(list[2]);
    expect(pickPlatform(list, { os: 'windows', architecture: 'amd64' })).toBeUndefined();
  });
});

describe('how a registry is reached (HTTPS first)', () => {
  it('falls back to plain HTTP only for loopback or insecure registries', async () => {
    const { connectionFor, isCertificateError, isNotTls } = await import('../src/client/tls.js');
    expect((await connectionFor('reg.example.com:5000', {})).httpFallback).toBe(false);
    expect((await connectionFor('10.0.0.5:5000', {})).httpFallback).toBe(false);
    expect((await connectionFor('127.0.0.1:5000', {})).httpFallback).toBe(true);
    expect((await connectionFor('localhost:5000', {})).httpFallback).toBe(true);
    const insecure = await connectionFor('reg.example.com:5000', { insecure: true });
    expect(insecure.httpFallback).toBe(true);
    expect(insecure.dispatcher).toBeDefined(); // certificates not verified
    // A plain HTTP answer to a TLS handshake is "not TLS"; an untrusted certificate is not.
    expect(isNotTls('ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number')).toBe(true);
    expect(isNotTls('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate')).toBe(false);
    expect(isCertificateError('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate')).toBe(true);
  });
});
