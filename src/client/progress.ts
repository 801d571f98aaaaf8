// Events a transfer reports, so a caller can draw progress bars or log. The client never
// prints; the CLI renders these (cli-progress on a terminal, JSON lines, or nothing).

export type ProgressEvent =
  /** Before the blobs go: how many there are and their bytes in all. */
  | { type: 'plan'; blobs: number; bytes: number }
  /** A blob needs no transfer: the destination has it, or the registry mounted it. */
  | { type: 'blob-skipped'; digest: string; size: number; reason: 'exists' | 'mounted' }
  | { type: 'blob-start'; digest: string; size: number; resumeAt: number }
  | { type: 'blob-progress'; digest: string; size: number; bytes: number }
  | { type: 'blob-done'; digest: string; size: number }
  | { type: 'manifest'; digest: string; mediaType: string; reference: string }
  | { type: 'retry'; what: string; attempt: number; delayMs: number; error: string };

export type ProgressListener = (event: ProgressEvent) => void;
