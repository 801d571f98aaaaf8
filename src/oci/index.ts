// The OCI rules every side shares (registry, client, runtime), with no dependencies.

export * from './grammar.js';
export * from './limits.js';
export * from './media-types.js';
