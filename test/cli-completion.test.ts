// `berth completion bash|zsh|fish`: each script loaded in its real shell completes the
// commands and a command's options. bash through its completion function with
// COMP_WORDS, fish through `complete -C`, zsh by calling the completion function with
// the two completion-system helpers it uses replaced by ones that print their arguments.

import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { berthOk } from './helpers/berth-cli.js';
import { tempDir } from './helpers/images.js';

const run = promisify(execFile);

function shellAvailable(shell: string): boolean {
  const found = (process.env.PATH ?? '').split(':').some((d) => {
    try {
      return statSync(join(d, shell)).isFile();
    } catch {
      return false;
    }
  });
  if (!found && process.env.BERTH_REQUIRE_E2E === '1') throw new Error(`the completion test needs ${shell} and BERTH_REQUIRE_E2E=1`);
  if (!found) process.stderr.write(`skipping the ${shell} completion test: ${shell} is not installed\n`);
  return found;
}

let work: string;
beforeAll(async () => {
  work = await tempDir('berth-completion-');
  await mkdir(work, { recursive: true });
  for (const shell of ['bash', 'zsh', 'fish']) {
    await writeFile(join(work, shell), (await berthOk(['completion', shell])).stdout);
  }
});
afterAll(() => rm(work, { recursive: true, force: true }));

describe('berth completion', () => {
  it('bash completes commands and options', async () => {
    const script = `source ${join(work, 'bash')}
COMP_WORDS=(berth pu); COMP_CWORD=1; _berth; echo "\${COMPREPLY[*]}"
COMP_WORDS=(berth push --ca); COMP_CWORD=2; _berth; echo "\${COMPREPLY[*]}"
COMP_WORDS=(berth delete --tls); COMP_CWORD=2; _berth; echo "\${COMPREPLY[*]}"`;
    const { stdout } = await run('bash', ['-c', script]);
    expect(stdout.split('\n')).toEqual(['push pull', '--ca-cert', '--tls-verify', '']);
  });

  it.skipIf(!shellAvailable('fish'))('fish completes commands with their descriptions, and options', async () => {
    const { stdout } = await run('fish', ['-c', `source ${join(work, 'fish')}; complete -C 'berth comp'; complete -C 'berth cp --plat'`]);
    expect(stdout).toContain('completion\tprint a completion script for bash, zsh or fish');
    expect(stdout).toContain('--platform\tcopy only this platform of a multi-platform image');
  });

  it.skipIf(!shellAvailable('zsh'))('zsh offers the commands, then the options of the one typed', async () => {
    const script = `_describe() { print -r -- "describe: \${(j:|:)\${(P)2}}" }
_arguments() { print -r -- "arguments: $*" }
compdef() { }
source ${join(work, 'zsh')}
words=(berth ''); CURRENT=2; _berth
words=(berth push ''); CURRENT=3; _berth`;
    const { stdout } = await run('zsh', ['-f', '-c', script]);
    const [describe, args] = stdout.trim().split('\n');
    expect(describe).toContain('push:push an image');
    expect(describe).toContain('|completion:print a completion script');
    expect(args).toContain("--ca-cert[trust this CA certificate (PEM) too; repeatable]:value:_files");
    expect(args).toContain('(--quiet -q)--quiet[print only the result]');
    expect(args).toContain('--tls-verify[verify the registry\'s certificate and require HTTPS (default true)]::value:(true false)');
  });
});
