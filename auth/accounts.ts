// Managing users: the checks and hashing around the registry's users service, shared by the `berth
// user` command and anything else that creates or changes accounts.

import type { UserService } from '../src/registry/users.js';
import { hashPassword } from './passwords.js';

/**
 * A user name is one component of a repository name, so that `<user>/...` is a valid
 * namespace for the user's own repositories, and it has no colon, which ends the user
 * part of Basic credentials.
 */
const USERNAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const GROUP_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function checkUsername(name: string): string {
  if (!USERNAME_RE.test(name) || name.length > 64) {
    throw new Error(`invalid user name "${name}": use lowercase letters, digits and single . _ - between them`);
  }
  return name;
}

function checkPassword(password: string): string {
  if (password.length < 8) throw new Error('password too short: use at least 8 characters');
  if (password.length > 1024) throw new Error('password too long');
  return password;
}

function checkGroups(groups: string[]): void {
  for (const group of groups) {
    if (!GROUP_RE.test(group)) throw new Error(`invalid group name "${group}"`);
  }
}

export async function createUser(
  store: UserService,
  user: { name: string; password: string; admin: boolean; groups: string[] },
): Promise<void> {
  checkUsername(user.name);
  checkGroups(user.groups);
  const passwordHash = await hashPassword(checkPassword(user.password));
  if (!(await store.add({ name: user.name, passwordHash, admin: user.admin, groups: user.groups }))) {
    throw new Error(`user "${user.name}" already exists`);
  }
}

export async function changePassword(store: UserService, name: string, password: string): Promise<void> {
  const passwordHash = await hashPassword(checkPassword(password));
  if (!(await store.setPassword(name, passwordHash))) throw new Error(`no user "${name}"`);
}

export async function setGroups(store: UserService, name: string, groups: string[]): Promise<void> {
  checkGroups(groups);
  if (!(await store.setGroups(name, groups))) throw new Error(`no user "${name}"`);
}
