// The two ports everything above storage/ speaks to: a BlobStore for bytes and a
// MetadataStore for records. Drivers implement them: filesystem + SQLite (the default,
// storage/fs and storage/sqlite) and S3 + PostgreSQL (scale-out). The registry's
// services (src/registry) hold the rules; a driver holds none, it only stores.
//
// Conventions every driver follows:
// - Every method is async; nothing blocks the event loop waiting for a lock (a driver
//   that is synchronous underneath, as SQLite is, retries a busy lock with async backoff).
// - Digests are canonical strings `algorithm:hex` (sha256 or sha512, lowercase hex),
//   already checked by the registry against the grammar; repository names and tags too.
//   A driver may turn them into object keys or paths without escaping.
// - Upload ids are UUIDs the registry makes (randomUUID), or `manifest-<uuid>` for the
//   short-lived object a manifest PUT writes. Also safe as keys.
// - Times are milliseconds since the epoch (Date.now()) unless a field says otherwise.
//
// THE INVARIANT (what makes a crash anywhere, on any driver, harmless):
//   1. an object is published first, by a write that is idempotent by digest
//      (BlobStore.commitUpload / putBlob), and only then is its row inserted
//      (MetadataStore.addBlob / putManifest);
//   2. garbage collection deletes rows in short transactions that leave a GC mark for
//      each deleted blob (MetadataStore.deleteUnusedBlobs), deletes the objects after
//      the commit (BlobStore.delete), then clears the marks (clearGcMarks);
//   3. a row insert for a digest with a live GC mark is refused (BlobMarkedError): the
//      writer waits until the mark is gone; after every insert the writer checks that
//      the object is still there and publishes it again if not (a collection may have
//      deleted it between the writer's publish and its insert), and only then removes
//      its upload;
//   4. no object operation ever happens inside a metadata transaction.
// So an object without a row is harmless garbage (the next collection removes it) and
// a row without an object never happens. A killed collector's marks die with its lease.

import type { Hash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';

// ---------------------------------------------------------------------------------
// Blobs: content-addressed, immutable bytes (layers, configs, manifests alike).
// ---------------------------------------------------------------------------------

/** Thrown by BlobStore.appendUpload when the body ends before the bytes it promised. */
export class IncompleteBodyError extends Error {}

/** Thrown by BlobStore.open, read and hashUpload when the object or upload does not exist. */
export class ObjectMissingError extends Error {
  readonly code = 'ENOENT';
}

/** An inclusive byte range, as HTTP's Range header gives it. */
export interface ByteRange {
  start: number;
  end: number;
}

/** An open blob: send it (or the range it was opened with), or give it back unread. */
export interface BlobReader {
  /** Size of the whole blob in bytes (not of the range). */
  readonly size: number;
  /**
   * Writes the bytes (the opened range, or all) to `out` and ends it. Rejects when `out`
   * closes early or the object turns out shorter than `size`; the reader is closed
   * either way.
   */
  writeTo(out: Writable): Promise<void>;
  /** Releases the reader without sending (after writeTo it is a no-op). */
  close(): Promise<void>;
}

export interface AppendOptions {
  /** The body must have exactly this many bytes (Content-Length or a chunk's range). */
  expectedLength?: number;
  /** Told the size of each chunk as it is taken from the stream (metrics, GC pacing). */
  onChunk?: (bytes: number) => void;
}

export interface BlobStore {
  /** Creates what the store needs (directories, a bucket check). Idempotent. */
  init(): Promise<void>;

  // --- uploads: bytes on their way to becoming a blob -----------------------------
  // An upload is written by any process of the registry, one request at a time (the
  // metadata store's upload lease says which); a later request may land on another
  // process, even another machine, and resume it from the acknowledged offset.

  /** Starts an empty upload. Fails if the id exists. */
  beginUpload(id: string): Promise<void>;

  /**
   * Appends `body` to the upload at `offset`, the length acknowledged to the client so
   * far: anything stored past `offset` (a request that died half-way) is discarded
   * first. Every byte is fed to `hash` on its way. Resolves to the number of bytes
   * written; rejects with IncompleteBodyError when the body ends short of
   * `expectedLength` or the client goes away (the caller then resumes at `offset`
   * again: the partial bytes count for nothing). Storage errors (ENOSPC...) reject with
   * the driver's error, `code` preserved.
   */
  appendUpload(id: string, offset: number, body: Readable, hash: Hash, options?: AppendOptions): Promise<number>;

  /**
   * Feeds the first `length` bytes of an upload to `hash` (to rebuild a running hash
   * that another process or a restarted one held). ObjectMissingError when the upload
   * is gone.
   */
  hashUpload(id: string, length: number, hash: Hash): Promise<void>;

  /** Bytes stored for the upload (may exceed the acknowledged offset), or null when it is gone. */
  uploadSize(id: string): Promise<number | null>;

  /**
   * Publishes the first `length` bytes of a verified upload as the blob `digest`,
   * durably. Idempotent by digest: when the blob already exists nothing changes. When
   * it is missing (say a collection deleted it) it is stored: a row is never trusted to
   * prove the object exists. The upload stays until removeUpload: the registry removes
   * it only once the row is in (and the object checked still there, see the invariant),
   * so it can publish again if a collection deleted the object meanwhile. The upload
   * must not be appended to concurrently (the caller holds its lease).
   */
  commitUpload(id: string, length: number, digest: string): Promise<void>;

  /** Publishes small content (a manifest) as the blob `digest`, durably. Idempotent by digest. */
  putBlob(digest: string, bytes: Buffer): Promise<void>;

  /** Removes an upload's bytes; no error when already gone. */
  removeUpload(id: string): Promise<void>;

  /** Every upload the store holds, with when it was last written (for orphan sweeps). */
  listUploads(): AsyncIterable<{ id: string; modifiedAt: number }>;

  // --- blobs -----------------------------------------------------------------------

  /** Size of the stored blob, or null when there is none. */
  stat(digest: string): Promise<number | null>;

  /**
   * Opens the blob for sending (a range of it, when given; the caller has checked the
   * range against the size it knows). Rejects with ObjectMissingError when absent, so a
   * caller can still answer with a clean error before any header went out.
   */
  open(digest: string, range?: ByteRange): Promise<BlobReader>;

  /** The whole blob in memory: only for small ones (manifests). ObjectMissingError when absent. */
  read(digest: string): Promise<Buffer>;

  /** Deletes a blob; no error when already gone. Never called inside a metadata transaction. */
  delete(digest: string): Promise<void>;

  /** Every blob the store holds, as `algorithm:hex`. */
  list(): AsyncIterable<string>;

  /**
   * Moves a corrupt blob out of the store, where an operator can look at it; resolves
   * to where it went (a path or a key), for the report.
   */
  quarantine(digest: string): Promise<string>;

  /**
   * Optional: a URL the client may fetch the blob from directly (an S3 pre-signed GET),
   * valid for `ttlSeconds`. The registry then answers a blob GET with a 307 to it.
   * Undefined (or a method that resolves to undefined) means: stream through the registry.
   */
  redirectUrl?(digest: string, options: { ttlSeconds: number; range?: ByteRange }): Promise<string | undefined>;

  /** Checks that the store takes writes now (readiness); rejects with the error code (EROFS, ENOSPC...). */
  probeWritable(): Promise<void>;

  /** Free bytes for new data, when the store can tell (a local disk); undefined for object stores. */
  freeBytes(): Promise<number | undefined>;
}

// ---------------------------------------------------------------------------------
// Metadata: the one transactional source of truth.
// ---------------------------------------------------------------------------------

/** Thrown by addBlob/putManifest when a collection is deleting the digest's object right now (see the invariant). */
export class BlobMarkedError extends Error {
  constructor(
    readonly digest: string,
    /** The collector holding the mark (its 'gc' lease holder), when the driver tells. */
    readonly runner = '',
  ) {
    super(`blob ${digest} is being deleted by garbage collection`);
  }
}

/** Thrown when the store refuses writes: opened read-only (a read-only mount) or full. */
export class ReadOnlyStoreError extends Error {
  readonly code = 'EROFS';
}

/**
 * Thrown by a driver whose service does not answer (PostgreSQL restarting, the S3 store
 * unreachable): the request answers 503 with this message, and may be retried.
 */
export class StoreUnavailableError extends Error {
  readonly code = 'EUNAVAILABLE';
}

export interface ManifestRecord {
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string | null;
  subjectDigest: string | null;
  /** The manifest's annotations as JSON text, or null. */
  annotations: string | null;
}

export interface NewManifest {
  repository: string;
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string | null;
  subject: string | null;
  annotations: string | null;
  /** Blobs this manifest needs linked in the repository (config, layers). */
  blobs: { digest: string; kind: 'config' | 'layer' | 'blob' }[];
  /** Child manifests (of an index) that must exist in the repository. */
  children: string[];
  /** Tags to point at it, in the same transaction. */
  tags: string[];
  /** A pull-through cache stores a manifest before the blobs and children it fetches later: skip the check. */
  referencesFetchedLater?: boolean;
}

/** What a manifest put found missing; the registry turns it into MANIFEST_BLOB_UNKNOWN. */
export interface MissingReference {
  digest: string;
  kind: 'blob' | 'manifest';
}

/**
 * An event for the webhook outbox, written by the domain operation that causes it, in
 * its transaction, once per configured endpoint that wants it. `payload` is the JSON
 * of one event of the notification envelope (src/registry/events.ts builds it).
 */
export interface OutboxEvent {
  endpoint: string;
  eventId: string;
  payload: string;
}

export interface QueuedEvent {
  seq: number;
  eventId: string;
  payload: string;
  attempts: number;
  nextAttemptAt: number;
}

export interface UploadSession {
  id: string;
  repository: string;
  /** Bytes received and acknowledged to the client so far. */
  offset: number;
  /**
   * Serialized running-hash state at `offset`, when the runtime can export it (it
   * cannot on Node 20: then null, and the next writer re-hashes the received prefix).
   */
  hashState: string | null;
  createdAt: number;
  updatedAt: number;
}

/** The lease on an upload: who may write to it until when. */
export interface UploadLease {
  /** Any unique string of the holder (process and request). */
  holder: string;
  /** How long the lease holds unless released or renewed (ms). */
  ttlMs: number;
}

export interface User {
  name: string;
  passwordHash: string;
  admin: boolean;
  groups: string[];
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** Seconds since the epoch (a token's `iat` unit): refresh tokens issued before it are no longer honoured. */
  passwordChangedAt: number;
}

export interface TagRecord {
  repository: string;
  name: string;
  manifestDigest: string;
  updatedAt: number;
}

export interface RepositoryUsage {
  repository: string;
  /** Bytes of every blob and manifest the repository can serve. */
  total: number;
  /** The part of total that no other repository shares. */
  unique: number;
  blobs: number;
}

export interface BrokenManifest {
  repository: string;
  manifest: string;
  missing: string;
}

export interface StorageCounts {
  repositories: number;
  blobs: number;
  /** Sum of the sizes of all blobs (layers, configs, manifests), each counted once. */
  bytes: number;
  uploadSessions: number;
}

/** A manifest the collector may delete: no tag, no parent index, no live subject, older than the cutoff. */
export interface UnusedManifest {
  repository: string;
  digest: string;
}

export interface CachedImage {
  repository: string;
  digest: string;
  /** Last pull, or the time it was cached when never pulled since. */
  pulledAt: number;
}

/** A named lease any process may take (GC runner, scheduled maintenance, webhook delivery). */
export interface LeaseState {
  holder: string;
  until: number;
}

/** A repository at a glance (the web UI's list). */
export interface RepositorySummary {
  tags: number;
  /** Bytes of every blob and manifest the repository can serve, each counted once. */
  bytes: number;
  /** When its newest manifest was pushed, or null. */
  lastPush: number | null;
}

/** A tag with what it points at, for a repository's page. */
export interface TagDetail {
  name: string;
  digest: string;
  mediaType: string;
  /** When the tag was last pushed. */
  updatedAt: number;
}

/** Where a page of tags newest first starts: after this push time and, at the same time, this name. */
export interface TagCursor {
  time: number;
  name: string;
}

export interface MetadataStore {
  /** Whether the store was opened read-only (a read-only mount): every write rejects with ReadOnlyStoreError. */
  readonly readOnly: boolean;

  /** Closes connections. Pending touches are the caller's business (flush first). */
  close(): Promise<void>;

  /**
   * A private copy for a dry run (`berth gc --dry-run`): the collection runs on it for
   * real, and nothing it does reaches the store or takes the store's write lock. Close
   * it when done. (SQLite: an in-memory copy; PostgreSQL: say, a REPEATABLE READ
   * transaction that is rolled back at close, as long as it holds no lock others wait
   * on.) Optional: without it, `gc --dry-run` is refused.
   */
  snapshot?(): Promise<MetadataStore>;

  /** Resolves when the database answers a query (readiness). */
  ping(): Promise<void>;

  // --- repositories and blob links ---------------------------------------------------

  /** Size of a blob linked in the repository, or undefined. The hot path of blob HEAD. */
  blobInRepository(repository: string, digest: string): Promise<number | undefined>;

  /** Size of a blob recorded anywhere, or undefined. */
  blobSize(digest: string): Promise<number | undefined>;

  /** Some repository that links the blob (for a mount without `from`). */
  aRepositoryWithBlob(digest: string): Promise<string | undefined>;

  /**
   * Records a published blob and links it to `repository`, creating the repository;
   * when `uploadId` is given its session is deleted in the same transaction. Refreshes
   * the blob's touch time. BlobMarkedError when a collection is deleting its object.
   */
  addBlob(blob: { repository: string; digest: string; size: number; uploadId?: string; events?: OutboxEvent[] }): Promise<void>;

  /** Links a recorded blob into another repository (a mount); false when the blob is not recorded. */
  mountBlob(repository: string, digest: string, events?: OutboxEvent[]): Promise<boolean>;

  /**
   * Removes a repository's link to a blob. 'unknown' when there is none; `{ heldBy }`
   * (manifest digests, and nothing changes) when manifests of the repository reference it.
   */
  unlinkBlob(repository: string, digest: string, events?: OutboxEvent[]): Promise<'unlinked' | 'unknown' | { heldBy: string[] }>;

  /**
   * Records that clients just saw these blobs (digest -> time): collections keep what
   * was touched within their grace period. Never moves a touch time backwards.
   */
  touchBlobs(touches: ReadonlyMap<string, number>): Promise<void>;

  // --- manifests and tags --------------------------------------------------------------

  /**
   * Records a manifest whose bytes were published (BlobStore.putBlob), with its
   * references and tags, in one transaction that first checks every referenced blob is
   * linked in the repository and every child manifest exists there: either all of it is
   * stored, or nothing changes and the first missing reference is returned. Touches the
   * referenced blobs. BlobMarkedError as for addBlob.
   */
  putManifest(manifest: NewManifest, events?: OutboxEvent[]): Promise<MissingReference | undefined>;

  manifestByDigest(repository: string, digest: string): Promise<ManifestRecord | undefined>;

  /**
   * The manifest a tag points at. The record's digest is the one the manifest was
   * pushed under (a manifest pushed by sha512 answers with its sha512 digest).
   */
  manifestByTag(repository: string, tag: string): Promise<ManifestRecord | undefined>;

  /** Deletes a manifest; its tags and its referrers (recursively) go with it. False when absent. */
  deleteManifest(repository: string, digest: string, events?: OutboxEvent[]): Promise<boolean>;

  /** Deletes a tag (not its manifest). False when absent. */
  deleteTag(repository: string, tag: string, events?: OutboxEvent[]): Promise<boolean>;

  /** Tag names after `after`, sorted, at most `limit` (-1: all); undefined when the repository is unknown. */
  listTags(repository: string, after: string, limit: number): Promise<string[] | undefined>;

  /** Repository names that hold a manifest, after `after`, sorted, at most `limit` (-1: all). */
  catalog(after: string, limit: number): Promise<string[]>;

  /** Manifests of the repository whose subject is `subject`, sorted by digest, after `after`, at most `limit` (-1, the default: all). */
  referrers(repository: string, subject: string, after?: string, limit?: number): Promise<ManifestRecord[]>;

  // --- upload sessions -------------------------------------------------------------

  createUpload(id: string, repository: string): Promise<void>;

  getUpload(id: string): Promise<UploadSession | undefined>;

  /**
   * Takes the upload's lease: resolves to the session when taken, `{ busyWith }` (the
   * current holder) when another holder's lease is still live, undefined when there is
   * no such session. A lease of a dead holder expires after its ttl; `replacing` takes
   * it over at once from that holder (the caller knows it is dead).
   */
  leaseUpload(id: string, lease: UploadLease, replacing?: string): Promise<UploadSession | { busyWith: string } | undefined>;

  /** Extends a lease the holder has (long bodies); false when it was lost. */
  renewUploadLease(id: string, lease: UploadLease): Promise<boolean>;

  /** Records the new acknowledged offset (and hash state) and releases the holder's lease. */
  releaseUpload(id: string, holder: string, progress?: { offset: number; hashState: string | null }): Promise<void>;

  deleteUpload(id: string): Promise<void>;

  /** Deletes sessions not written since `before`; resolves to their ids (their bytes are the caller's to remove). */
  expireUploads(before: number): Promise<string[]>;

  /** Which of these upload ids have a session (for removing upload bytes that have none). */
  existingUploads(ids: string[]): Promise<Set<string>>;

  // --- garbage collection -------------------------------------------------------------
  // Every delete re-checks its conditions in its own short transaction, so a push,
  // mount or touch that lands meanwhile either wins (and the row stays) or comes after.

  /** Manifests no tag, index or live subject holds, created before `cutoff`. At most `limit`. */
  unusedManifests(cutoff: number, limit: number): Promise<UnusedManifest[]>;

  /** Deletes those of `manifests` that are still unused; resolves to those deleted. */
  deleteUnusedManifests(manifests: UnusedManifest[], cutoff: number, events?: OutboxEvent[]): Promise<UnusedManifest[]>;

  /**
   * Deletes at most `limit` repository links to blobs no manifest of the repository
   * references, created and touched before `cutoff`; resolves to how many.
   */
  deleteUnusedLinks(cutoff: number, limit: number): Promise<number>;

  /**
   * Up to `limit` blobs nothing links, is, or references, touched before `cutoff`, with
   * digest after `after` (sorted): the candidates of one batch.
   */
  unusedBlobs(cutoff: number, after: string, limit: number): Promise<{ digest: string; size: number }[]>;

  /**
   * Deletes the rows of those `digests` that are still unused and leaves a GC mark for
   * each, owned by `runner` (the holder of the 'gc' lease); resolves to the rows deleted,
   * whose objects the caller deletes after this returns, then clears the marks.
   */
  deleteUnusedBlobs(digests: string[], cutoff: number, runner: string): Promise<{ digest: string; size: number }[]>;

  /**
   * Of these digests (objects the blob store holds), marks for `runner` those with no
   * row and no mark, and resolves to them: objects a crash or a refused manifest left
   * without a row, which the caller then deletes and unmarks. A writer that records one
   * meanwhile waits for the mark and publishes again (the invariant). Optional: without
   * it, such objects stay until `berth scrub --repair`.
   */
  markOrphanObjects?(digests: string[], runner: string): Promise<string[]>;

  /** Removes GC marks (after their objects were deleted). */
  clearGcMarks(digests: string[]): Promise<void>;

  /** Whether a collection is running (touches are then written at once instead of batched). */
  gcRunning(): Promise<boolean>;

  /** Records a finished collection (for status and metrics). */
  recordGcRun(run: { at: number; freedBytes: number }): Promise<void>;

  // --- leases (GC runner, maintenance scheduler, webhook delivery) -------------------

  /**
   * Takes or renews the named lease for `holder` until now + ttlMs. False when another
   * holder has it and it has not expired. A holder that dies simply stops renewing.
   */
  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean>;

  /** Gives the lease up (only if `holder` has it). */
  releaseLease(name: string, holder: string): Promise<void>;

  lease(name: string): Promise<LeaseState | undefined>;

  // --- retention -------------------------------------------------------------------

  /** Every tag, newest first within each repository (sorted by repository). */
  allTags(): Promise<TagRecord[]>;

  /**
   * In one transaction: deletes the tag if it still points at `digest`, then the
   * manifest if no tag or parent index holds it any more. Resolves to what went.
   */
  retireTag(repository: string, tag: string, digest: string, events?: OutboxEvent[]): Promise<{ tagDeleted: boolean; manifestDeleted: boolean }>;

  // --- the pull-through cache (src/proxy); optional: a store without them has no cache eviction

  /** Records pulls of cached manifests: [repository, digest, time]. */
  recordPulls?(pulls: [string, string, number][]): Promise<void>;

  /** Bytes the repositories under `prefix/` hold (blobs and manifests), each counted once. */
  cacheSize?(prefix: string): Promise<number>;

  /** The images under `prefix/` (manifests no index of their repository holds), least recently pulled first. */
  cachedImages?(prefix: string): Promise<CachedImage[]>;

  /**
   * Evicts a cached image in one transaction: the manifest with its tags and referrers,
   * the child manifests of an index nothing else holds, and the repository's links to
   * blobs no manifest left there uses. Objects go at the next collection.
   */
  evictImage?(repository: string, digest: string): Promise<void>;

  // --- scrub, usage, metrics ---------------------------------------------------------

  /** Every recorded blob, sorted by digest. */
  allBlobs(): Promise<{ digest: string; size: number }[]>;

  /**
   * Forgets a blob whose object is gone or corrupt: its links, the manifests whose
   * bytes it is, and its row (clients then push it again, which heals what uses it).
   */
  forgetBlob(digest: string): Promise<void>;

  brokenManifests(): Promise<BrokenManifest[]>;

  danglingTags(): Promise<{ repository: string; tag: string }[]>;

  usage(): Promise<RepositoryUsage[]>;

  counts(): Promise<StorageCounts>;

  // --- browsing (the web UI): each an index or primary-key range ----------------------

  /** Undefined for an unknown repository. */
  repositorySummary(repository: string): Promise<RepositorySummary | undefined>;
  /**
   * Tags newest push first (then by name), after `cursor`, whose name contains `contains`
   * ('' for all); undefined for an unknown repository. Keyset paging: a page deep in
   * 10,000 tags costs what the first does.
   */
  tagsNewestFirst(repository: string, cursor: TagCursor | undefined, contains: string, limit: number): Promise<TagDetail[] | undefined>;
  /** Bytes of a manifest and what it references (an index: also its children's), each blob once. */
  imageSize(repository: string, digest: string): Promise<number>;
  /** The tags of the repository on this manifest. */
  tagsOf(repository: string, digest: string): Promise<string[]>;
  /** Every repository that links the blob, by name. */
  repositoriesWithBlob(digest: string): Promise<string[]>;
  /** The last finished collection (recordGcRun), if any. */
  lastGcRun(): Promise<{ at: number; freedBytes: number } | undefined>;

  // --- users (auth/ hashes, the store only keeps the hash) ----------------------------

  getUser(name: string): Promise<User | undefined>;
  listUsers(): Promise<User[]>;
  /** False when the name is taken. */
  addUser(user: { name: string; passwordHash: string; admin: boolean; groups: string[] }): Promise<boolean>;
  /** False when there is no such user. */
  removeUser(name: string): Promise<boolean>;
  /** Replaces the hash and sets passwordChangedAt to now; false when there is no such user. */
  setPassword(name: string, passwordHash: string): Promise<boolean>;
  /** Replaces the user's groups; false when there is no such user. */
  setUserGroups(name: string, groups: string[]): Promise<boolean>;

  // --- the event outbox ------------------------------------------------------------------

  /** Queues events outside any domain operation (rare: most come through the operations' `events`). */
  enqueueEvents(events: OutboxEvent[]): Promise<void>;
  /** Endpoints with queued events. */
  eventEndpoints(): Promise<string[]>;
  /** The oldest `limit` events of an endpoint, in order. */
  eventHead(endpoint: string, limit: number): Promise<QueuedEvent[]>;
  removeEvents(seqs: number[]): Promise<void>;
  /** Records a failed delivery and when to try again. */
  failEvents(seqs: number[], nextAttemptAt: number, error: string): Promise<void>;
  /** Deletes the events of endpoints not in `names`; resolves to how many. */
  dropEventsExcept(names: string[]): Promise<number>;
  queuedEvents(): Promise<number>;
}

