// The writer's half of the storage invariant (storage/ports.ts): publish the object,
// insert its row, and make sure the object is still there afterwards.

import { BlobMarkedError, type BlobStore, type MetadataStore } from '../../storage/ports.js';
import { holderIsDead } from './leases.js';

/** How long a writer waits for a collection to finish deleting the same digest (ms). */
const MARK_WAIT_MS = 60_000;

/**
 * Publishes an object and records it. `publish` writes the object (idempotent by
 * digest); `insert` records its row and rejects with BlobMarkedError while a collection
 * is deleting that very object, in which case it is tried again with backoff. Once the
 * row is in, the object is checked: a collection may have deleted it between `publish`
 * and `insert` (its mark was already cleared), and then it is published again. From
 * then on the row protects it (it was touched now, inside every grace period).
 */
export async function publishObject<T>(
  store: BlobStore,
  meta: MetadataStore,
  digest: string,
  publish: () => Promise<void>,
  insert: () => Promise<T>,
): Promise<T> {
  await publish();
  let result: T;
  for (let wait = 5, waited = 0; ; wait = Math.min(wait * 2, 500)) {
    try {
      result = await insert();
      break;
    } catch (err) {
      if (!(err instanceof BlobMarkedError) || waited >= MARK_WAIT_MS) throw err;
      // A killed collector's marks die with its lease: end it at once when its process is gone.
      if (holderIsDead(err.runner)) {
        await meta.releaseLease('gc', err.runner);
        continue;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
    waited += wait;
  }
  if ((await store.stat(digest)) === null) await publish();
  return result;
}
