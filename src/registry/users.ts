// The registry's users, as auth/ needs them: stored with the hash auth/ computed (the
// store never sees a password).

import type { MetadataStore, User } from '../../storage/ports.js';

export type { User };

export class UserService {
  constructor(private readonly meta: MetadataStore) {}

  get(name: string): Promise<User | undefined> {
    return this.meta.getUser(name);
  }

  list(): Promise<User[]> {
    return this.meta.listUsers();
  }

  /** False when the name is taken. */
  add(user: { name: string; passwordHash: string; admin: boolean; groups: string[] }): Promise<boolean> {
    return this.meta.addUser(user);
  }

  /** False when there is no such user. */
  remove(name: string): Promise<boolean> {
    return this.meta.removeUser(name);
  }

  /** Replaces the hash (refresh tokens issued before now stop working); false when there is no such user. */
  setPassword(name: string, passwordHash: string): Promise<boolean> {
    return this.meta.setPassword(name, passwordHash);
  }

  /** Replaces the user's groups; false when there is no such user. */
  setGroups(name: string, groups: string[]): Promise<boolean> {
    return this.meta.setUserGroups(name, groups);
  }
}
