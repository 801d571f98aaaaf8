// `berth inspect IMAGE`: what an image is made of, from a registry or from any transport
// (`oci:DIR[:TAG]`, `oci-archive:`, `docker-archive:`). For an index, its platforms; for
// an image, the config's platform, entrypoint and creation date and each layer with its
// size. --raw prints the manifest bytes exactly as they are stored.

import type { Command } from 'commander';
import {
  formatImageLocation,
  formatPlatform,
  formatReference,
  isIndexType,
  openSource,
  parseImageLocation,
  parsePlatform,
  pickPlatform,
  type ImageIndex,
  type ImageManifest,
  type ImageSource,
} from '../../client/index.js';
import { clientOptions, printResult, withClientFlags, type CommonFlags } from '../client-output.js';
import { formatBytes } from '../sizes.js';
import { inspectContainerIfAny } from './container.js';

interface InspectFlags extends CommonFlags {
  raw?: boolean;
  platform?: string;
}

interface ImageConfig {
  created?: string;
  os?: string;
  architecture?: string;
  variant?: string;
  config?: { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null; WorkingDir?: string; User?: string };
}

export function register(program: Command): void {
  withClientFlags(
    program
      .command('inspect <ref>')
      .description('show the manifest, config and layers of an image: [docker://]HOST[:PORT]/REPO[:TAG|@DIGEST], oci:DIR[:TAG], oci-archive:FILE or docker-archive:FILE')
      .option('--raw', 'print the manifest exactly as stored')
      .option('--platform <os/arch[/variant]>', 'for a multi-platform image: inspect this platform instead of listing them')
      .option('-f, --format <template>', 'for a container: Go template, e.g. {{.State.Pid}}')
      .option('--root <dir>', 'for a container: the local store holding it'),
  ).action(async (ref: string, flags: InspectFlags & { format?: string; root?: string }) => {
    // A container of the local store is shown as docker inspect shows it.
    if (await inspectContainerIfAny(ref, flags)) return;
    const loc = parseImageLocation(ref);
    const opened = await openSource(loc, clientOptions(flags));
    try {
      await inspect(opened.endpoint, opened.reference, loc.transport === 'docker' ? formatReference(loc.ref) : formatImageLocation(loc), flags);
    } finally {
      await opened.close();
    }
  });
}

/** Image configs are small; read one whole. */
async function readJson<T>(source: ImageSource, desc: { digest: string; size: number; mediaType: string }): Promise<T> {
  const chunks: Buffer[] = [];
  for await (const chunk of await source.openBlob(desc, 0)) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
}

async function inspect(source: ImageSource, reference: string, name: string, flags: InspectFlags): Promise<void> {
  let m = await source.getManifest(reference);
  if (isIndexType(m.mediaType) && flags.platform) {
    const picked = pickPlatform((m.parsed as ImageIndex).manifests ?? [], parsePlatform(flags.platform));
    if (!picked) throw new Error(`${name} has no image for ${flags.platform}`);
    m = await source.getManifest(picked.digest);
  }
  if (flags.raw) {
    process.stdout.write(m.raw);
    return;
  }
  if (isIndexType(m.mediaType)) {
    const index = m.parsed as ImageIndex;
    const lines = [`Name:      ${name}`, `Digest:    ${m.digest}`, `MediaType: ${m.mediaType}`, 'Manifests:'];
    for (const d of index.manifests ?? []) {
      lines.push(`  ${d.digest}  ${d.platform ? formatPlatform(d.platform) : (d.artifactType ?? 'unknown/unknown')}  ${formatBytes(d.size)}`);
    }
    printResult(flags, { name, digest: m.digest, mediaType: m.mediaType, manifest: index }, lines.join('\n'));
    return;
  }
  const manifest = m.parsed as ImageManifest;
  const configBlob = manifest.config?.mediaType?.includes('image.config') || manifest.config?.mediaType?.includes('container.image')
    ? await readJson<ImageConfig>(source, manifest.config)
    : undefined;
  const total = (manifest.layers ?? []).reduce((n, l) => n + l.size, 0) + (manifest.config?.size ?? 0);
  const lines = [
    `Name:      ${name}`,
    `Digest:    ${m.digest}`,
    `MediaType: ${m.mediaType}`,
    ...(manifest.artifactType ? [`Artifact:  ${manifest.artifactType}`] : []),
    ...(configBlob
      ? [
          `Platform:  ${formatPlatform({ os: configBlob.os ?? '?', architecture: configBlob.architecture ?? '?', variant: configBlob.variant })}`,
          `Created:   ${configBlob.created ?? '-'}`,
          `Command:   ${[...(configBlob.config?.Entrypoint ?? []), ...(configBlob.config?.Cmd ?? [])].join(' ') || '-'}`,
        ]
      : []),
    `Config:    ${manifest.config?.digest}  ${formatBytes(manifest.config?.size ?? 0)}`,
    `Layers:    ${manifest.layers?.length ?? 0}, ${formatBytes(total)} in all`,
    ...(manifest.layers ?? []).map((l) => `  ${l.digest}  ${formatBytes(l.size)}  ${l.mediaType}`),
    ...(manifest.subject ? [`Subject:   ${manifest.subject.digest}`] : []),
  ];
  printResult(flags, { name, digest: m.digest, mediaType: m.mediaType, manifest, config: configBlob, size: total }, lines.join('\n'));
}
