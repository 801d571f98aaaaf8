// `berth user add|rm|ls|passwd`: the registry's users, kept in its metadata database
// (the data directory's SQLite, or the PostgreSQL of --config); the server need not be
// stopped.

import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { configOption, dataOption, openDataDir, type StorageFlags } from '../maintenance.js';
import type { UserService } from '../../registry/users.js';
import { changePassword, checkUsername, createUser } from '../../../auth/accounts.js';

async function withUsers<T>(flags: StorageFlags, fn: (users: UserService) => Promise<T> | T): Promise<T> {
  // The first user may come before the first serve: the database is created if need be.
  const registry = await openDataDir(flags, { mustExist: false });
  try {
    return await fn(registry.users);
  } finally {
    await registry.close();
  }
}

/** The password from stdin (one trailing newline removed, as `echo` and files add one). */
async function readPasswordFromStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** The password to set: from stdin, or a new random one that is printed once. */
async function passwordFor(name: string, fromStdin: boolean | undefined): Promise<string> {
  if (fromStdin) return readPasswordFromStdin();
  const password = randomBytes(18).toString('base64url');
  process.stdout.write(`password for ${name}: ${password}\n`);
  return password;
}

export function register(program: Command): void {
  const user = program.command('user').description('manage the users of a registry with authentication on');

  user
    .command('add <name>')
    .description('add a user (a random password is printed unless --password-stdin is given)')
    .option('--admin', 'may do everything, the catalog included')
    .option('--group <group...>', 'groups named by access rules')
    .option('--password-stdin', 'read the password from standard input')
    .option(...dataOption)
    .option(...configOption)
    .action(async (name: string, opts: { admin?: boolean; group?: string[]; passwordStdin?: boolean; data?: string; config?: string }) => {
      await withUsers(opts, async (users) => {
        checkUsername(name);
        if (await users.get(name)) throw new Error(`user "${name}" already exists`);
        const password = await passwordFor(name, opts.passwordStdin);
        await createUser(users, { name, password, admin: opts.admin === true, groups: opts.group ?? [] });
      });
    });

  user
    .command('rm <name>')
    .description('remove a user (tokens already issued to them expire on their own, in minutes)')
    .option(...dataOption)
    .option(...configOption)
    .action(async (name: string, opts: { data?: string; config?: string }) => {
      await withUsers(opts, async (users) => {
        if (!(await users.remove(name))) throw new Error(`no user "${name}"`);
      });
    });

  user
    .command('ls')
    .description('list users')
    .option('--json', 'as JSON')
    .option(...dataOption)
    .option(...configOption)
    .action(async (opts: { json?: boolean; data?: string; config?: string }) => {
      const list = await withUsers(opts, (users) => users.list());
      if (opts.json) {
        const rows = list.map((u) => ({ name: u.name, admin: u.admin, groups: u.groups, created: new Date(u.createdAt).toISOString() }));
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      for (const u of list) {
        process.stdout.write(`${u.name}${u.admin ? '\tadmin' : '\t-'}\t${u.groups.join(',') || '-'}\n`);
      }
    });

  user
    .command('passwd <name>')
    .description("change a user's password (their refresh tokens stop working)")
    .option('--password-stdin', 'read the password from standard input')
    .option(...dataOption)
    .option(...configOption)
    .action(async (name: string, opts: { passwordStdin?: boolean; data?: string; config?: string }) => {
      await withUsers(opts, async (users) => {
        if (!(await users.get(name))) throw new Error(`no user "${name}"`);
        await changePassword(users, name, await passwordFor(name, opts.passwordStdin));
      });
    });
}
