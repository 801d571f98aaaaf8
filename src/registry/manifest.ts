// Manifest parsing and validation: what a PUT must satisfy before anything is stored,
// and what a stored manifest references (for existence checks, referrers and GC).

import { RegistryError } from './errors.js';
import { parseDigest } from './names.js';
import { bareMediaType, IMAGE_MANIFEST_TYPES as IMAGE_TYPES, INDEX_TYPES, isNonDistributableLayer, MediaType, SCHEMA1_TYPES } from '../oci/media-types.js';

export { MAX_MANIFEST_BYTES } from '../oci/limits.js';
export { MediaType, bareMediaType };

/** Whether a manifest of this media type is an index (OCI index or Docker manifest list). */
export function isIndexMediaType(mediaType: string): boolean {
  return INDEX_TYPES.has(mediaType);
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: unknown;
}

export interface ParsedManifest {
  mediaType: string;
  kind: 'image' | 'index';
  /**
   * Blobs the manifest references (config, layers) with the sizes it declares: each must
   * be linked in the repository with that size, except a `foreign` layer (a
   * non-distributable one with urls), which may be absent but is kept like any other
   * when it was pushed.
   */
  blobs: { digest: string; kind: 'config' | 'layer'; size: number; foreign?: boolean }[];
  /** Child manifests of an index, with the sizes it declares. */
  children: { digest: string; size: number }[];
  subject: string | null;
  /** artifactType, or for an image manifest without one the config's media type (as referrers lists it). */
  artifactType: string | null;
  annotations: Record<string, string> | null;
}

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message, detail);
}

function checkDescriptor(value: unknown, where: string): Descriptor {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`${where} is not a descriptor`);
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType === '') throw invalid(`${where} has no mediaType`);
  if (typeof d.digest !== 'string') throw invalid(`${where} has no digest`);
  try {
    parseDigest(d.digest);
  } catch {
    throw invalid(`${where} has an invalid digest`, { digest: d.digest });
  }
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw invalid(`${where} has an invalid size`);
  if (d.urls !== undefined && (!Array.isArray(d.urls) || d.urls.some((u) => typeof u !== 'string'))) {
    throw invalid(`${where} has invalid urls`);
  }
  if (d.annotations !== undefined) checkAnnotations(d.annotations, where);
  return d as unknown as Descriptor;
}

/** A foreign layer's urls: absolute http(s) URLs, where clients will fetch it. */
function checkUrls(urls: string[], where: string): void {
  for (const url of urls) {
    let protocol: string;
    try {
      protocol = new URL(url).protocol;
    } catch {
      throw invalid(`${where} has a url that is not an absolute URL`, { url });
    }
    if (protocol !== 'http:' && protocol !== 'https:') throw invalid(`${where} has a url that is not http or https`, { url });
  }
}

function checkAnnotations(value: unknown, where: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw invalid(`${where} annotations must map strings to strings`);
  }
  return value as Record<string, string>;
}

/**
 * Parses and checks a manifest body. `contentType` is the request's Content-Type; a
 * `mediaType` in the body must agree with it. Schema 1 is refused outright.
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid('manifest is not a JSON object');
  const m = json as Record<string, unknown>;
  const declared = bareMediaType(contentType);
  if (m.schemaVersion === 1 || SCHEMA1_TYPES.has(declared) || (typeof m.mediaType === 'string' && SCHEMA1_TYPES.has(m.mediaType))) {
    throw invalid('Docker schema 1 manifests are not supported: push a schema 2 or OCI manifest (docker, podman and skopeo do by default)');
  }
  if (m.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  if (m.mediaType !== undefined && typeof m.mediaType !== 'string') throw invalid('mediaType must be a string');

  let mediaType = m.mediaType as string | undefined;
  if (mediaType && declared && declared !== mediaType) {
    throw invalid(`Content-Type ${declared} does not match the manifest's mediaType ${mediaType}`);
  }
  mediaType ??= declared || (Array.isArray(m.manifests) ? MediaType.ociIndex : MediaType.ociManifest);
  if (!IMAGE_TYPES.has(mediaType) && !INDEX_TYPES.has(mediaType)) {
    throw invalid(`unsupported manifest media type ${mediaType}`);
  }

  let subject: string | null = null;
  if (m.subject !== undefined) subject = checkDescriptor(m.subject, 'subject').digest;
  const annotations = m.annotations === undefined ? null : checkAnnotations(m.annotations, 'manifest');
  if (m.artifactType !== undefined && (typeof m.artifactType !== 'string' || m.artifactType === '')) {
    throw invalid('artifactType must be a non-empty string');
  }
  const artifactType = (m.artifactType as string | undefined) ?? null;

  if (IMAGE_TYPES.has(mediaType)) {
    if (m.manifests !== undefined) throw invalid('an image manifest has no manifests field');
    const config = checkDescriptor(m.config, 'config');
    if (!Array.isArray(m.layers)) {
      // OCI artifacts may omit layers entirely only by giving an empty array; docker needs it too.
      throw invalid('layers must be an array');
    }
    const layers = m.layers.map((l, i) => checkDescriptor(l, `layers[${i}]`));
    const blobs: ParsedManifest['blobs'] = [{ digest: config.digest, kind: 'config', size: config.size }];
    layers.forEach((layer, i) => {
      // Only a non-distributable layer may live at its urls; an ordinary one must be pushed, urls or not.
      const foreign = isNonDistributableLayer(layer.mediaType) && (layer.urls?.length ?? 0) > 0;
      if (foreign) checkUrls(layer.urls!, `layers[${i}]`);
      blobs.push({ digest: layer.digest, kind: 'layer', size: layer.size, ...(foreign ? { foreign } : {}) });
    });
    return { mediaType, kind: 'image', blobs, children: [], subject, artifactType: artifactType ?? config.mediaType, annotations };
  }

  if (m.config !== undefined || m.layers !== undefined) throw invalid('an index has no config or layers');
  if (!Array.isArray(m.manifests)) throw invalid('manifests must be an array');
  const children = m.manifests.map((d, i) => {
    const { digest, size } = checkDescriptor(d, `manifests[${i}]`);
    return { digest, size };
  });
  return { mediaType, kind: 'index', blobs: [], children, subject, artifactType, annotations };
}
