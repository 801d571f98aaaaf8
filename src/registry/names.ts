// The grammar of the OCI Distribution Spec v1.1 for repository names, tags and digests.
// Everything that reaches storage has passed through here, so no request can name a
// path outside the data directory: names are lowercase alphanumerics with single
// separators, digests are an algorithm and hex.

import { RegistryError } from './errors.js';

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** The reference registry's limit on a repository name (including any host part a client adds). */
export const MAX_NAME_LENGTH = 255;

export type Algorithm = 'sha256' | 'sha512';
const HEX_LENGTH: Record<Algorithm, number> = { sha256: 64, sha512: 128 };

export interface Digest {
  algorithm: Algorithm;
  hex: string;
  /** `algorithm:hex`, the canonical form. */
  value: string;
}

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function checkName(name: string): string {
  if (!isValidName(name)) {
    throw new RegistryError('NAME_INVALID', 'invalid repository name', { name });
  }
  return name;
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function checkTag(tag: string): string {
  if (!isValidTag(tag)) throw new RegistryError('MANIFEST_INVALID', 'invalid tag', { tag });
  return tag;
}

export function looksLikeDigest(reference: string): boolean {
  return reference.includes(':');
}

/**
 * Parses a digest. A string of the digest grammar with an algorithm this registry does
 * not implement is UNSUPPORTED; anything else malformed is DIGEST_INVALID.
 */
export function parseDigest(value: string): Digest {
  if (!DIGEST_RE.test(value)) throw new RegistryError('DIGEST_INVALID', 'invalid digest', { digest: value });
  const colon = value.indexOf(':');
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new RegistryError('UNSUPPORTED', `digest algorithm ${algorithm} is not supported (use sha256 or sha512)`, {
      digest: value,
    }, { status: 400 });
  }
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw new RegistryError('DIGEST_INVALID', `invalid ${algorithm} digest`, { digest: value });
  }
  return { algorithm, hex, value };
}
