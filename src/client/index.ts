// Berth's registry client: a library that talks HTTP to any OCI registry (Berth, the
// reference registry, zot, Docker Hub). It has no dependency on the server's code.
//
// Pull an image into an OCI image layout (what the bundled runtime does):
//
//   import { pull } from '../client/index.js';
//   const { digest, manifest } = await pull('127.0.0.1:5000/library/busybox:latest', '/var/lib/berth/images/busybox', {
//     platform: 'linux/amd64',          // from a multi-platform index; default: this host's platform
//     onProgress: (e) => { ... },       // optional ProgressEvent stream
//   });
//   // layout: /var/lib/berth/images/busybox/{oci-layout,index.json,blobs/sha256/...}, tagged `latest`
//   const layout = await OciLayout.open('/var/lib/berth/images/busybox');
//   const config = await layout.readBlob(manifest.parsed.config.digest);   // image config JSON
//   const layer = layout.openBlob(manifest.parsed.layers[0].digest);       // a gzip tar stream
//
// Push a layout or a `docker save` archive, copy between registries:
//
//   await push('./layout', 'registry:5000/app:1.0');            // the layout's only image, or --source-tag
//   await pushDockerArchive('./app.tar', 'registry:5000/app:1.0');
//   await copy('registry:5000/app:1.0', 'registry:5000/other/app:1.0');  // mounts blobs on one registry
//
// Credentials come from `berth login` (saveCredentials) and ~/.docker/config.json, or
// from `credentials` in the options. Loopback registries use plain HTTP; others HTTPS
// unless `insecure`. Lower-level pieces: RegistryClient (one registry's API),
// OciLayout, copyImage with ImageSource/ImageDestination, parseReference.

export {
  pull,
  push,
  pushDockerArchive,
  pullDockerArchive,
  copy,
  getManifest,
  resolveDigest,
  tag,
  remove,
  type PullOptions,
  type PushOptions,
} from './images.js';
export { transfer, connect, openSource, type TransferOptions, type OpenedSource } from './transfer.js';
export { parseImageLocation, formatImageLocation, type ImageLocation } from './transports.js';
export { copyImage, type CopyOptions, type CopyResult } from './copy.js';
export { RegistryClient, type ClientOptions } from './registry-client.js';
export { OciLayout, REF_NAME } from './layout.js';
export { importDockerArchive, exportDockerArchive } from './docker-archive.js';
export {
  RegistrySource,
  RegistryDestination,
  LayoutSource,
  LayoutDestination,
  type ImageSource,
  type ImageDestination,
} from './endpoints.js';
export { parseReference, formatReference, manifestReference, isLoopback, type Reference } from './reference.js';
export { parsePlatform, formatPlatform, hostPlatform, pickPlatform } from './platform.js';
export { findCredentials, saveCredentials, removeCredentials, berthAuthPath, dockerConfigPath, type Credentials } from './credentials.js';
export { RegistryHttpError } from './errors.js';
export { DigestMismatchError } from './digest.js';
export type { ProgressEvent, ProgressListener } from './progress.js';
export * from './media-types.js';
