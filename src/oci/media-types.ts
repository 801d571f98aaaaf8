// Media types of manifests, indexes and their parts (OCI image spec, Docker schema 2).

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export const IMAGE_MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaType.ociManifest, MediaType.dockerManifest]);
export const INDEX_TYPES: ReadonlySet<string> = new Set([MediaType.ociIndex, MediaType.dockerManifestList]);
export const SCHEMA1_TYPES: ReadonlySet<string> = new Set([MediaType.dockerSchema1, MediaType.dockerSchema1Signed]);

/**
 * Layers that are not to be pushed to registries ("foreign" layers, such as Windows base
 * layers): only these may name where they live with `urls` instead of being pushed.
 */
const NON_DISTRIBUTABLE_LAYER = /^application\/vnd\.(oci\.image\.layer\.nondistributable\.v1\.tar(\+gzip|\+zstd)?|docker\.image\.rootfs\.foreign\.diff\.tar(\.gzip)?)$/;

export function isNonDistributableLayer(mediaType: string): boolean {
  return NON_DISTRIBUTABLE_LAYER.test(mediaType);
}

/** The media type without parameters such as `; charset=utf-8`. */
export function bareMediaType(contentType: string | undefined | null): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}
