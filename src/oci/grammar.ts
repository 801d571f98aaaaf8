// The grammar of the OCI Distribution Spec v1.1: repository names, tags, digests. Pure
// functions without dependencies, shared by the registry, the client and the runtime;
// each side turns a refusal into its own error (the registry into the spec's codes).

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
export const NAME_RE = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
export const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
export const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** The reference registry's limit on a repository name (including any host part a client adds). */
export const MAX_NAME_LENGTH = 255;

/** The digest algorithms Berth implements, and the length of their hex. */
export const HEX_LENGTH = { sha256: 64, sha512: 128 } as const;
export type Algorithm = keyof typeof HEX_LENGTH;

export interface Digest {
  algorithm: Algorithm;
  hex: string;
  /** `algorithm:hex`, the canonical form. */
  value: string;
}

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

/** A reference that is a digest rather than a tag (tags have no colon). */
export function looksLikeDigest(reference: string): boolean {
  return reference.includes(':');
}

/**
 * Parses a digest: the Digest, or why not. `unsupported` is a string of the digest
 * grammar with an algorithm not implemented here; `invalid` anything else malformed.
 */
export function readDigest(value: string): Digest | { problem: 'invalid' | 'unsupported'; message: string } {
  if (!DIGEST_RE.test(value)) return { problem: 'invalid', message: 'invalid digest' };
  const colon = value.indexOf(':');
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    return { problem: 'unsupported', message: `digest algorithm ${algorithm} is not supported (use sha256 or sha512)` };
  }
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex)) return { problem: 'invalid', message: `invalid ${algorithm} digest` };
  return { algorithm, hex, value };
}
