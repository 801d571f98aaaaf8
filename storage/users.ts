// Registry users and their groups in the metadata database. Hashing is the caller's
// business (auth/passwords.ts): this module only stores the hash it is given.

import type { Db } from './db.js';

import type { User } from './ports.js';
export type { User };

interface UserRow {
  name: string;
  password_hash: string;
  admin: number;
  created_at: number;
  password_changed_at: number;
  groups: string | null;
}

const SELECT_USER = `
  SELECT u.name, u.password_hash, u.admin, u.created_at, u.password_changed_at,
         (SELECT group_concat(group_name, char(10)) FROM user_groups g WHERE g.user_name = u.name) AS groups
  FROM users u`;

function toUser(row: UserRow): User {
  return {
    name: row.name,
    passwordHash: row.password_hash,
    admin: row.admin === 1,
    groups: row.groups ? row.groups.split('\n').sort() : [],
    createdAt: row.created_at,
    passwordChangedAt: row.password_changed_at,
  };
}

export class UserStore {
  private readonly getStmt;
  private readonly listStmt;
  private readonly insertStmt;
  private readonly insertGroupStmt;
  private readonly deleteStmt;
  private readonly passwordStmt;

  constructor(private readonly db: Db) {
    this.getStmt = db.prepare<[string], UserRow>(`${SELECT_USER} WHERE u.name = ?`);
    this.listStmt = db.prepare<[], UserRow>(`${SELECT_USER} ORDER BY u.name`);
    this.insertStmt = db.prepare(
      'INSERT INTO users (name, password_hash, admin, created_at, password_changed_at) VALUES (?, ?, ?, ?, ?)',
    );
    this.insertGroupStmt = db.prepare('INSERT OR IGNORE INTO user_groups (user_name, group_name) VALUES (?, ?)');
    this.deleteStmt = db.prepare('DELETE FROM users WHERE name = ?');
    this.passwordStmt = db.prepare('UPDATE users SET password_hash = ?, password_changed_at = ? WHERE name = ?');
  }

  get(name: string): User | undefined {
    const row = this.getStmt.get(name);
    return row ? toUser(row) : undefined;
  }

  list(): User[] {
    return this.listStmt.all().map(toUser);
  }

  /** Adds a user; false when the name is taken. */
  add(user: { name: string; passwordHash: string; admin: boolean; groups: string[] }): boolean {
    const now = Date.now();
    return this.db.transaction(() => {
      if (this.getStmt.get(user.name)) return false;
      this.insertStmt.run(user.name, user.passwordHash, user.admin ? 1 : 0, now, Math.floor(now / 1000));
      for (const group of user.groups) this.insertGroupStmt.run(user.name, group);
      return true;
    })();
  }

  /** Removes a user and their groups; false when there was no such user. */
  remove(name: string): boolean {
    return this.deleteStmt.run(name).changes > 0;
  }

  /** Replaces a password hash; false when there is no such user. */
  setPassword(name: string, passwordHash: string): boolean {
    return this.passwordStmt.run(passwordHash, Math.floor(Date.now() / 1000), name).changes > 0;
  }
}
