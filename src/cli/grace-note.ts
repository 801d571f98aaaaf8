// The line `berth gc` adds when unreferenced blobs were kept for the grace period, so a
// collection that frees nothing says why ("3 blobs are within the 1h grace period").

import { formatBytes } from './sizes.js';

export function formatGraceNote(report: { blobsInGrace: number; bytesInGrace: number }, grace: string): string | undefined {
  const n = report.blobsInGrace;
  if (n === 0) return undefined;
  return (
    `${n} ${n === 1 ? 'blob' : 'blobs'} (${formatBytes(report.bytesInGrace)}) ${n === 1 ? 'is' : 'are'} within the ${grace} grace period: ` +
    `kept in case a push in flight needs them; a later collection frees them (--grace 0s for now)`
  );
}
