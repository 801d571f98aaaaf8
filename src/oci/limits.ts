// Sizes the spec's implementations agree on.

/** The manifest size limit (the reference registry's too): larger PUTs get 413. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export { MAX_NAME_LENGTH } from './grammar.js';
