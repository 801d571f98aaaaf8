// Runs the built `berth` command (dist/src/cli/main.js) as a user would, with an
// environment of the test's own (login files, PATH), and resolves whatever the exit code.
//
//   const r = await berthCli(['push', 'oci:./app', `${host}/team/app:1`], { env: { DOCKER_CONFIG: dir } });
//   expect(r.code).toBe(0);

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const BERTH_MAIN = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

export interface CliRun {
  stdout: string;
  stderr: string;
  code: number;
}

export interface CliOptions {
  /** Added to (and overriding) this process's environment. */
  env?: NodeJS.ProcessEnv;
  stdin?: string;
  cwd?: string;
}

export function berthCli(args: string[], opts: CliOptions = {}): Promise<CliRun> {
  if (!existsSync(BERTH_MAIN)) throw new Error(`${BERTH_MAIN} is missing: build first with \`npm run build\``);
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BERTH_MAIN, ...args],
      { env: { ...process.env, ...opts.env }, cwd: opts.cwd, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ stdout, stderr, code: err ? ((err as { code?: number }).code ?? 1) : 0 }),
    );
    child.stdin!.end(opts.stdin ?? '');
  });
}

/** berthCli that throws (with stderr) unless the command succeeded. */
export async function berthOk(args: string[], opts: CliOptions = {}): Promise<CliRun> {
  const r = await berthCli(args, opts);
  if (r.code !== 0) throw new Error(`berth ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r;
}
