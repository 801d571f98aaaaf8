// The access a registry request needs, worked out from its method, path and query as
// the reference registry does, and the `WWW-Authenticate` challenges that ask for it.

/** What a /v2 request needs: only a valid identity (ping, unknown paths) or one action on one resource. */
export type RequiredAccess =
  | { kind: 'identity' }
  | {
      kind: 'resource';
      type: string;
      name: string;
      action: string;
      /** The scope to announce in a challenge: writes ask for pull too, since a push also reads. */
      challengeActions: string[];
    };

// Greedy `(.+)` makes the split happen at the LAST route segment, so a repository may
// itself contain `blobs`, `manifests`, `tags` or `referrers` components.
const REPOSITORY_PATH = /^\/v2\/(.+)\/(blobs|manifests|tags|referrers)\/.*$/;

export function requiredAccess(method: string, pathname: string): RequiredAccess {
  // The catalog and Berth's admin endpoints (/v2/_berth/...) list the whole registry.
  if (pathname === '/v2/_catalog' || pathname.startsWith('/v2/_berth/')) {
    return { kind: 'resource', type: 'registry', name: 'catalog', action: '*', challengeActions: ['*'] };
  }
  const m = REPOSITORY_PATH.exec(pathname);
  if (!m) return { kind: 'identity' };
  const name = m[1];
  switch (method) {
    case 'GET':
    case 'HEAD':
      return { kind: 'resource', type: 'repository', name, action: 'pull', challengeActions: ['pull'] };
    case 'DELETE':
      return { kind: 'resource', type: 'repository', name, action: 'delete', challengeActions: ['delete'] };
    default:
      // POST, PUT, PATCH. A mount (`POST .../blobs/uploads/?mount=&from=`) needs push on the
      // target only: the mount route itself asks whether the source may be pulled and falls
      // back to a normal upload when not.
      return { kind: 'resource', type: 'repository', name, action: 'push', challengeActions: ['pull', 'push'] };
  }
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

export function bearerChallenge(params: {
  realm: string;
  service: string;
  scope?: string;
  error?: 'invalid_token' | 'insufficient_scope';
}): string {
  const parts = [`realm=${quote(params.realm)}`, `service=${quote(params.service)}`];
  if (params.scope) parts.push(`scope=${quote(params.scope)}`);
  if (params.error) parts.push(`error=${quote(params.error)}`);
  return `Bearer ${parts.join(',')}`;
}

export function basicChallenge(realm: string): string {
  return `Basic realm=${quote(realm)}, charset="UTF-8"`;
}
