// Image references as users type them: `[host[:port]/]repo[:tag][@digest]`. A first
// path component is a host when it has a dot or a colon or is `localhost` (the rule
// docker uses); otherwise the image is on Docker Hub, where single names live under
// `library/`. The grammar matches the OCI Distribution Spec; it is repeated here (not
// imported from src/registry) because the client is a library with no server code.

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API = 'registry-1.docker.io';

export interface Reference {
  /** Registry as written, `host[:port]` (`docker.io` for Docker Hub). */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export class ReferenceError extends Error {}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function isDigest(value: string): boolean {
  return DIGEST_RE.test(value);
}

function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

/**
 * Parses an image reference. With `defaultTag` (the default), a reference with neither
 * tag nor digest gets `latest`; pass `defaultTag: null` to keep it bare (for `tags <repo>`).
 */
export function parseReference(input: string, opts: { defaultTag?: string | null } = {}): Reference {
  let rest = input.trim().replace(/^(?:docker|https?):\/\//, '');
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw new ReferenceError(`invalid digest in ${input}: ${digest || 'empty'} (expected algorithm:hex, e.g. sha256:...)`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (tag === '') throw new ReferenceError(`empty tag in ${input}: remove the trailing colon or name a tag`);
    // `127.0.0.1:5010` alone is a registry, not Docker Hub's image "127.0.0.1" tagged 5010.
    if (!rest.includes('/') && looksLikeHost(rest) && /^\d+$/.test(tag)) throw noRepository(input);
    if (!isValidTag(tag)) throw new ReferenceError(`invalid tag in ${input}: ${tag} (letters, digits, _ . -, up to 128, not starting with . or -)`);
  }
  const slash = rest.indexOf('/');
  let registry = DOCKER_HUB;
  let repository = rest;
  if (slash >= 0 && looksLikeHost(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    repository = rest.slice(slash + 1);
    if (!repository) throw noRepository(input);
  } else if (slash < 0 && looksLikeHost(rest) && rest !== 'localhost') {
    throw noRepository(input);
  }
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (!NAME_RE.test(repository)) {
    const hint = NAME_RE.test(repository.toLowerCase())
      ? `repository names are lowercase (${repository.toLowerCase()})`
      : 'lowercase letters, digits and . _ - between them, components separated by /';
    throw new ReferenceError(`invalid repository name in ${input}: ${repository}: ${hint}`);
  }
  if (!tag && !digest && opts.defaultTag !== null) tag = opts.defaultTag ?? 'latest';
  return { registry, repository, tag, digest };
}

function noRepository(input: string): ReferenceError {
  const host = input.replace(/^(?:docker|https?):\/\//, '').replace(/\/+$/, '');
  return new ReferenceError(`${input} names a registry but no repository: write ${host}/REPOSITORY[:TAG]`);
}

/** The reference a manifest request uses: the digest when there is one, else the tag. */
export function manifestReference(ref: Reference): string {
  const r = ref.digest ?? ref.tag;
  if (!r) throw new ReferenceError(`${formatReference(ref)} names no tag or digest`);
  return r;
}

export function formatReference(ref: Reference): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** True for `localhost`, 127.0.0.0/8 and ::1, where plain HTTP is the norm. */
export function isLoopback(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.split(':')[0]!;
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The host name of a registry's API (Docker Hub's differs from its name in references). */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}
