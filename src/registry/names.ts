// The registry's side of the OCI grammar (src/oci/grammar.ts): a name, tag or digest
// that breaks it is refused with the spec's error code. Everything that reaches
// storage has passed through here, so no request can name a path outside the data
// directory: names are lowercase alphanumerics with single separators, digests are an
// algorithm and hex.

import { RegistryError } from './errors.js';
import { isValidName, isValidTag, readDigest, type Digest } from '../oci/grammar.js';

export { isValidName, isValidTag, looksLikeDigest, MAX_NAME_LENGTH, type Algorithm, type Digest } from '../oci/grammar.js';

export function checkName(name: string): string {
  if (!isValidName(name)) {
    throw new RegistryError('NAME_INVALID', 'invalid repository name', { name });
  }
  return name;
}

export function checkTag(tag: string): string {
  if (!isValidTag(tag)) throw new RegistryError('MANIFEST_INVALID', 'invalid tag', { tag });
  return tag;
}

/**
 * Parses a digest. A string of the digest grammar with an algorithm this registry does
 * not implement is UNSUPPORTED; anything else malformed is DIGEST_INVALID.
 */
export function parseDigest(value: string): Digest {
  const digest = readDigest(value);
  if ('problem' in digest) {
    if (digest.problem === 'unsupported') throw new RegistryError('UNSUPPORTED', digest.message, { digest: value }, { status: 400 });
    throw new RegistryError('DIGEST_INVALID', digest.message, { digest: value });
  }
  return digest;
}
