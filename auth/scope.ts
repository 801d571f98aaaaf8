// Scopes of the Docker token spec: `type:name:action[,action...]`, several separated by
// spaces. A repository name may carry a registry host with a port (`host:5000/team/app`),
// so the type ends at the FIRST colon and the actions start after the LAST one, as the
// reference implementation parses them; a naive split(':') would cut the name apart.

/** One entry of a token's `access` claim, and one requested scope. */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

const ACTION_RE = /^(?:[a-z]+|\*)$/;

/** Parses one `type:name:actions` scope; null when it is not of that grammar. */
export function parseScope(scope: string): AccessEntry | null {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first || last === scope.length - 1) return null;
  // A resource class such as `repository(plugin)` is accepted but does not change the type.
  const type = scope.slice(0, first).replace(/\([a-z0-9]+\)$/, '');
  const name = scope.slice(first + 1, last);
  const actions = scope.slice(last + 1).split(',');
  if (!/^[a-z0-9]+$/.test(type) || name === '' || /\s/.test(name) || !actions.every((a) => ACTION_RE.test(a))) {
    return null;
  }
  return { type, name, actions: [...new Set(actions)] };
}

/**
 * Parses every scope of a request (several `scope` parameters, each possibly holding
 * several space-separated scopes) into entries merged per resource. Malformed scopes are
 * skipped: asking for something odd is not an error, the token just grants less.
 */
export function parseScopes(values: Iterable<string>): AccessEntry[] {
  const merged = new Map<string, AccessEntry>();
  for (const value of values) {
    for (const part of value.split(' ')) {
      if (part === '') continue;
      const entry = parseScope(part);
      if (!entry) continue;
      const key = `${entry.type}:${entry.name}`;
      const existing = merged.get(key);
      if (existing) existing.actions = [...new Set([...existing.actions, ...entry.actions])];
      else merged.set(key, entry);
    }
  }
  return [...merged.values()];
}

export function formatScope(entry: AccessEntry): string {
  return `${entry.type}:${entry.name}:${entry.actions.join(',')}`;
}

/** Whether an access claim grants `action` on a resource (`*` grants every action). */
export function accessAllows(access: readonly AccessEntry[], type: string, name: string, action: string): boolean {
  return access.some(
    (entry) => entry.type === type && entry.name === name && (entry.actions.includes(action) || entry.actions.includes('*')),
  );
}
