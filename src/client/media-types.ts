// The manifest media types the client understands, and the Accept header that asks a
// registry for any of them (without it, registries may down-convert or 404 an index).

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

export const MANIFEST_ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST].join(', ');

export function isIndexType(mediaType: string | undefined): boolean {
  return mediaType === OCI_INDEX || mediaType === DOCKER_MANIFEST_LIST;
}

export function isManifestType(mediaType: string | undefined): boolean {
  return isIndexType(mediaType) || mediaType === OCI_MANIFEST || mediaType === DOCKER_MANIFEST;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  artifactType?: string;
  urls?: string[];
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** A manifest or index as fetched: the exact bytes (their digest is the identity) and the parsed form. */
export interface FetchedManifest {
  digest: string;
  mediaType: string;
  raw: Buffer;
  parsed: ImageManifest | ImageIndex;
}

/**
 * The media type of manifest bytes: the Content-Type a registry sent when it is a
 * manifest type, else the `mediaType` field, else inferred from the shape.
 */
export function manifestMediaType(parsed: { mediaType?: string; manifests?: unknown; config?: unknown }, contentType?: string | null): string {
  const ct = contentType?.split(';')[0]!.trim();
  if (ct && isManifestType(ct)) return ct;
  if (parsed.mediaType) return parsed.mediaType;
  return Array.isArray(parsed.manifests) ? OCI_INDEX : OCI_MANIFEST;
}

/** Blobs a manifest needs (config, layers; also the subject is not a child) and child manifests of an index. */
export function children(m: FetchedManifest): { blobs: Descriptor[]; manifests: Descriptor[] } {
  if (isIndexType(m.mediaType)) return { blobs: [], manifests: (m.parsed as ImageIndex).manifests ?? [] };
  const im = m.parsed as ImageManifest;
  return { blobs: [im.config, ...(im.layers ?? [])].filter(Boolean), manifests: [] };
}
