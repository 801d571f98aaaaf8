// Where an image is, in skopeo's syntax, for every command that names one (push, pull,
// cp, inspect, run):
//
//   docker://HOST[:PORT]/REPO[:TAG|@DIGEST]   a registry (the default: `docker://` may be left out)
//   oci:DIR[:TAG]                             an OCI image layout directory
//   oci-archive:FILE[:TAG]                    a tar of an OCI image layout
//   docker-archive:FILE[:NAME:TAG]            a `docker save` archive
//
// As in skopeo, the path ends at the first colon after the transport. For the commands
// that always had a path on one side (push SOURCE, pull TARGET), a bare `./dir`,
// `/dir` or `../dir` is still a layout and `./file.tar` an archive (`pathDefault`).

import { parseReference, ReferenceError, isValidTag, type Reference } from './reference.js';

export type ImageLocation =
  | { transport: 'docker'; ref: Reference }
  | { transport: 'oci'; path: string; tag?: string }
  | { transport: 'oci-archive'; path: string; tag?: string }
  | { transport: 'docker-archive'; path: string; name?: string };

export const TRANSPORTS = ['docker', 'oci', 'oci-archive', 'docker-archive'] as const;

export interface ParseLocationOptions {
  /** Treat a bare path (`./x`, `/x`, `../x`) as a layout, or as a docker archive when it ends in `.tar`. */
  pathDefault?: boolean;
  /** For registry references: the tag when none is given (`null`: none). */
  defaultTag?: string | null;
}

function looksLikePath(input: string): boolean {
  return /^(?:\.{1,2}(?:\/|$)|\/|~\/)/.test(input);
}

/** Splits `PATH[:REST]` at the first colon, as skopeo does. */
function splitPath(value: string): [string, string | undefined] {
  const colon = value.indexOf(':');
  return colon < 0 ? [value, undefined] : [value.slice(0, colon), value.slice(colon + 1)];
}

function layoutTag(input: string, tag: string | undefined): string | undefined {
  if (tag === undefined) return undefined;
  if (tag === '') throw new ReferenceError(`empty tag in ${input}: remove the trailing colon or name a tag`);
  if (!isValidTag(tag)) throw new ReferenceError(`invalid tag in ${input}: ${tag}`);
  return tag;
}

export function parseImageLocation(input: string, opts: ParseLocationOptions = {}): ImageLocation {
  const m = /^([a-z-]+):(.*)$/.exec(input);
  const transport = m?.[1];
  if (transport === 'docker') {
    if (!m![2]!.startsWith('//')) throw new ReferenceError(`${input}: the docker transport is written docker://HOST/REPO[:TAG]`);
    return { transport: 'docker', ref: parseReference(m![2]!.slice(2), { defaultTag: opts.defaultTag }) };
  }
  if (transport === 'oci' || transport === 'oci-archive') {
    const [path, tag] = splitPath(m![2]!);
    if (!path) throw new ReferenceError(`${input}: no path after ${transport}:`);
    return { transport, path, tag: layoutTag(input, tag) };
  }
  if (transport === 'docker-archive') {
    const [path, name] = splitPath(m![2]!);
    if (!path) throw new ReferenceError(`${input}: no path after docker-archive:`);
    if (name !== undefined) parseReference(name); // a malformed name is caught here, not after the transfer
    return { transport, path, name };
  }
  if (transport && ['dir', 'containers-storage', 'docker-daemon', 'ostree', 'sif'].includes(transport)) {
    throw new ReferenceError(`${input}: berth does not read or write the ${transport} transport (it has ${TRANSPORTS.join(', ')})`);
  }
  if (opts.pathDefault && looksLikePath(input)) {
    return input.endsWith('.tar') ? { transport: 'docker-archive', path: input } : { transport: 'oci', path: input };
  }
  return { transport: 'docker', ref: parseReference(input, { defaultTag: opts.defaultTag }) };
}

export function formatImageLocation(loc: ImageLocation): string {
  switch (loc.transport) {
    case 'docker':
      return `docker://${loc.ref.registry}/${loc.ref.repository}${loc.ref.tag ? `:${loc.ref.tag}` : ''}${loc.ref.digest ? `@${loc.ref.digest}` : ''}`;
    case 'docker-archive':
      return `docker-archive:${loc.path}${loc.name ? `:${loc.name}` : ''}`;
    default:
      return `${loc.transport}:${loc.path}${loc.tag ? `:${loc.tag}` : ''}`;
  }
}
