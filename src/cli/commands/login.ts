// `berth login REGISTRY`: checks the credentials against the registry (the /v2/ ping,
// and a token when it uses the token flow), then saves them where docker does (its
// config.json or credential helper), or in --authfile.

import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { connect, saveCredentials } from '../../client/index.js';
import { clientOptions, printResult, withClientFlags, type CommonFlags } from '../client-output.js';

interface LoginFlags extends CommonFlags {
  username?: string;
  password?: string;
  passwordStdin?: boolean;
}

/** `https://host:5000/` or `host:5000/v2/` -> `host:5000`, as references name registries. */
export function registryHost(input: string): string {
  return input.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Asks on the terminal; `hidden` answers are not echoed. */
function ask(question: string, hidden: boolean): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (hidden) {
    const out = rl as unknown as { _writeToOutput: (s: string) => void };
    out._writeToOutput = (s: string) => {
      if (s.startsWith(question)) process.stderr.write(question);
    };
  }
  return new Promise((resolve) =>
    rl.question(question, (answer) => {
      rl.close();
      if (hidden) process.stderr.write('\n');
      resolve(answer);
    }),
  );
}

export function register(program: Command): void {
  withClientFlags(
    program
      .command('login <registry>')
      .description('log in to a registry (HOST[:PORT]); credentials are checked, then saved where docker keeps them (or in --authfile)')
      .option('-u, --username <name>', 'user name')
      .option('-p, --password <password>', 'password (prefer --password-stdin: arguments show in process lists)')
      .option('--password-stdin', 'read the password from stdin'),
  ).action(async (registryArg: string, flags: LoginFlags) => {
    const registry = registryHost(registryArg);
    const interactive = !!process.stdin.isTTY && !flags.passwordStdin;
    const username = flags.username ?? (interactive ? await ask('Username: ', false) : undefined);
    if (!username) throw new Error('a user name is needed: --username <name>');
    const password = flags.passwordStdin
      ? await readStdin()
      : (flags.password ?? (interactive ? await ask('Password: ', true) : undefined));
    if (!password) throw new Error('a password is needed: --password-stdin or --password <password>');
    await connect(registry, { ...clientOptions(flags), credentials: { username, password } }).checkLogin();
    const path = await saveCredentials(registry, { username, password }, { authfile: flags.authfile });
    printResult(flags, { registry, username, saved: path }, flags.quiet ? '' : `Logged in to ${registry} as ${username} (saved in ${path})`);
  });
}
