// Docker schema 2 manifests rewritten as OCI ones, for OCI image layouts: skopeo's `oci:`
// transport only looks at index.json entries of OCI media types ("no descriptor found
// for reference" otherwise) and umoci refuses Docker ones, so a layout berth writes holds
// OCI manifests, as `skopeo copy docker://... oci:...` writes. The config and layer
// bytes stay the same; only the manifests (and so their digests) change.

import { digestOf } from './digest.js';
import {
  DOCKER_CONFIG,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_MANIFEST,
  type Descriptor,
  type FetchedManifest,
  type ImageIndex,
  type ImageManifest,
} from './media-types.js';

const OCI_TYPE_OF: Record<string, string> = {
  [DOCKER_MANIFEST]: OCI_MANIFEST,
  [DOCKER_MANIFEST_LIST]: OCI_INDEX,
  [DOCKER_CONFIG]: OCI_CONFIG,
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.docker.image.rootfs.diff.tar': 'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
};

const ociDescriptor = (d: Descriptor, converted: Map<string, Descriptor>): Descriptor =>
  converted.get(d.digest) ?? { ...d, mediaType: OCI_TYPE_OF[d.mediaType] ?? d.mediaType };

/**
 * The OCI form of `m`, or `m` itself when it is OCI already. `converted` maps the digests
 * of child manifests converted before (an index's children come first) to their new
 * descriptors, so an index points at the OCI children.
 */
export function toOciManifest(m: FetchedManifest, converted: Map<string, Descriptor>): FetchedManifest {
  const mediaType = OCI_TYPE_OF[m.mediaType];
  if (mediaType === OCI_MANIFEST) {
    const im = m.parsed as ImageManifest;
    const parsed: ImageManifest = {
      ...im,
      mediaType,
      config: ociDescriptor(im.config, converted),
      layers: im.layers.map((l) => ociDescriptor(l, converted)),
    };
    return serialize(parsed, mediaType);
  }
  if (mediaType === OCI_INDEX) {
    const ix = m.parsed as ImageIndex;
    return serialize({ ...ix, mediaType, manifests: ix.manifests.map((d) => ociDescriptor(d, converted)) }, mediaType);
  }
  return m;
}

function serialize(parsed: ImageManifest | ImageIndex, mediaType: string): FetchedManifest {
  const raw = Buffer.from(JSON.stringify(parsed));
  return { digest: digestOf(raw), mediaType, raw, parsed };
}
