// Who may do what. Defaults: an admin may do everything, the catalog included; any
// other user may pull every repository and push and delete under `<username>/`; an
// anonymous client gets nothing, or pull everywhere with `anonymousPull`.
//
// Rules from the configuration change this per repository pattern. They are read in
// order and the FIRST rule that matches both the client and the repository decides
// the actions, so a rule can grant more than the defaults or take access away:
//
//   rules:
//     - groups: [ci]            # group ci may push to prod/...
//       repositories: ["prod/**"]
//       actions: [pull, push]
//     - users: ["*"]            # everyone else may only pull there
//       repositories: ["prod/**"]
//       actions: [pull]
//     - anonymous: true         # strangers may pull public/...
//       repositories: ["public/**"]
//       actions: [pull]
//
// In a pattern `*` matches within one path component, `**` across components.
// Admins are never restricted by rules.

import type { AccessEntry } from './scope.js';
import { globToRegExp } from '../src/registry/glob.js';

export type Identity =
  | { kind: 'anonymous' }
  | { kind: 'user'; name: string; admin: boolean; groups: readonly string[] };

export const ANONYMOUS: Identity = { kind: 'anonymous' };

export const REPOSITORY_ACTIONS = ['pull', 'push', 'delete'] as const;
export type RepositoryAction = (typeof REPOSITORY_ACTIONS)[number];

export interface AccessRule {
  /** User names; `*` is any signed-in user. */
  users: string[];
  groups: string[];
  anonymous: boolean;
  /** Repository globs, kept for messages; `patterns` are what is matched. */
  repositories: string[];
  patterns: RegExp[];
  actions: RepositoryAction[];
}

export interface AccessPolicy {
  anonymousPull: boolean;
  rules: AccessRule[];
}

function stringList(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
  throw new Error(`${where}: expected a string or a list of strings`);
}

/** Reads the `rules` list of the auth configuration, rejecting anything malformed at start-up. */
export function parseRules(raw: unknown): AccessRule[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new Error('auth rules: expected a list');
  return raw.map((item: unknown, i) => {
    const where = `auth rule ${i + 1}`;
    if (item === null || typeof item !== 'object') throw new Error(`${where}: expected an object`);
    const r = item as Record<string, unknown>;
    const known = new Set(['users', 'groups', 'anonymous', 'repositories', 'actions']);
    for (const key of Object.keys(r)) if (!known.has(key)) throw new Error(`${where}: unknown field "${key}"`);
    const users = stringList(r.users, `${where}.users`);
    const groups = stringList(r.groups, `${where}.groups`);
    if (r.anonymous !== undefined && typeof r.anonymous !== 'boolean') throw new Error(`${where}.anonymous: expected true or false`);
    const anonymous = r.anonymous === true;
    if (users.length === 0 && groups.length === 0 && !anonymous) {
      throw new Error(`${where}: says for whom (users, groups or anonymous)`);
    }
    const repositories = stringList(r.repositories, `${where}.repositories`);
    if (repositories.length === 0) throw new Error(`${where}: needs repositories (globs)`);
    const actions = stringList(r.actions, `${where}.actions`);
    for (const action of actions) {
      if (!(REPOSITORY_ACTIONS as readonly string[]).includes(action)) {
        throw new Error(`${where}.actions: "${action}" is not one of ${REPOSITORY_ACTIONS.join(', ')}`);
      }
    }
    return {
      users,
      groups,
      anonymous,
      repositories,
      patterns: repositories.map(globToRegExp),
      actions: actions as RepositoryAction[],
    };
  });
}

function ruleApplies(rule: AccessRule, identity: Identity, repository: string): boolean {
  const who =
    identity.kind === 'anonymous'
      ? rule.anonymous
      : rule.users.includes('*') || rule.users.includes(identity.name) || rule.groups.some((g) => identity.groups.includes(g));
  return who && rule.patterns.some((p) => p.test(repository));
}

/** The actions `identity` may take on a resource (`*` meaning all of them). */
export function allowedActions(policy: AccessPolicy, identity: Identity, type: string, name: string): string[] {
  if (identity.kind === 'user' && identity.admin) {
    return type === 'repository' ? [...REPOSITORY_ACTIONS, '*'] : ['*'];
  }
  if (type !== 'repository') return [];
  const rule = policy.rules.find((r) => ruleApplies(r, identity, name));
  if (rule) return rule.actions;
  if (identity.kind === 'anonymous') return policy.anonymousPull ? ['pull'] : [];
  return name.startsWith(`${identity.name}/`) ? [...REPOSITORY_ACTIONS] : ['pull'];
}

export function permits(policy: AccessPolicy, identity: Identity, type: string, name: string, action: string): boolean {
  const allowed = allowedActions(policy, identity, type, name);
  return allowed.includes(action) || allowed.includes('*');
}

/**
 * What a token carries: the intersection of what was asked and what the rules allow.
 * Asking for more than allowed is not an error; resources with nothing granted are left out.
 */
export function grant(policy: AccessPolicy, identity: Identity, requested: readonly AccessEntry[]): AccessEntry[] {
  const granted: AccessEntry[] = [];
  for (const entry of requested) {
    const allowed = allowedActions(policy, identity, entry.type, entry.name);
    const actions = entry.actions.filter((a) => allowed.includes(a));
    if (actions.length > 0) granted.push({ type: entry.type, name: entry.name, actions });
  }
  return granted;
}
