// Upload sessions of large blobs, remembered on disk until the blob is in, so a push that
// was interrupted (Ctrl-C, a crash, a dropped network) and run again asks the registry how
// much of the session it holds (the upload status, GET on the session URL) and sends only
// the rest. One small file per session under $BERTH_UPLOAD_STATE_DIR, else
// ${XDG_STATE_HOME:-~/.local/state}/berth/uploads; a stale one costs one GET.

import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

function stateDir(): string {
  return process.env.BERTH_UPLOAD_STATE_DIR ?? join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'berth', 'uploads');
}

export class UploadState {
  private readonly file: string;

  constructor(registry: string, repo: string, digest: string) {
    const key = createHash('sha256').update(`${registry}\n${repo}\n${digest}`).digest('hex');
    this.file = join(stateDir(), `${key}.json`);
  }

  /** The session URL a previous run left, if any. */
  async load(): Promise<string | undefined> {
    try {
      return (JSON.parse(await readFile(this.file, 'utf8')) as { location?: string }).location;
    } catch {
      return undefined;
    }
  }

  /** Best effort: a push goes on when the state cannot be written (it then just cannot resume). */
  async save(location: string): Promise<void> {
    try {
      await mkdir(stateDir(), { recursive: true, mode: 0o700 });
      await writeFile(`${this.file}.tmp`, JSON.stringify({ location, savedAt: new Date().toISOString() }), { mode: 0o600 });
      await rename(`${this.file}.tmp`, this.file);
    } catch {
      // not resumable across runs, still correct
    }
  }

  async forget(): Promise<void> {
    await rm(this.file, { force: true });
  }
}
