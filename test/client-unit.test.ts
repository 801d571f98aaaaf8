// Unit tests of the client's parsing: references, auth challenges and scopes, platforms.

import { describe, expect, it } from 'vitest';
import { parseChallenge, scopesCover } from '../src/client/auth.js';
import { isLoopback, parseReference, pickPlatform, registryBaseUrl } from '../src/client/index.js';

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
    expect(registryBaseUrl('docker.io')).toBe('https://registry-1.docker.io');
  });

  it('rejects what the distribution grammar rejects', () => {
    expect(() => parseReference('127.0.0.1:5000/Upper/case')).toThrow(/invalid repository name/);
    expect(() => parseReference('127.0.0.1:5000/app:-bad')).toThrow(/invalid tag/);
    expect(() => parseReference('127.0.0.1:5000/app@sha256')).toThrow(/invalid digest/);
  });

  it('uses plain HTTP on loopback or with --insecure only', () => {
    expect(isLoopback('127.0.0.1:5000')).toBe(true);
    expect(isLoopback('localhost')).toBe(true);
    expect(isLoopback('[::1]:5000')).toBe(true);
    expect(isLoopback('10.0.0.1:5000')).toBe(false);
    expect(registryBaseUrl('127.0.0.1:5000')).toBe('http://127.0.0.1:5000');
    expect(registryBaseUrl('reg.example.com')).toBe('https://reg.example.com');
    expect(registryBaseUrl('reg.example.com:5000', { insecure: true })).toBe('http://reg.example.com:5000');
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
