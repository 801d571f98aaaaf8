// `berth inspect <ref>`: what an image is made of. For an index, its platforms; for an
// image, the config's platform, entrypoint and creation date and each layer with its
// size. --raw prints the manifest bytes exactly as the registry holds them.

import type { Command } from 'commander';
import {
  connect,
  formatPlatform,
  formatReference,
  isIndexType,
  manifestReference,
  parsePlatform,
  parseReference,
  pickPlatform,
  type ImageIndex,
  type ImageManifest,
} from '../../client/index.js';
import { clientOptions, humanBytes, printResult, withClientFlags, type CommonFlags } from '../client-output.js';

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
      .description('show the manifest, config and layers of host[:port]/repo[:tag|@digest]')
      .option('--raw', 'print the manifest exactly as stored')
      .option('--platform <os/arch[/variant]>', 'for a multi-platform image: inspect this platform instead of listing them'),
  ).action(async (ref: string, flags: InspectFlags) => {
    const r = parseReference(ref);
    const client = connect(r.registry, clientOptions(flags));
    let m = await client.getManifest(r.repository, manifestReference(r));
    if (isIndexType(m.mediaType) && flags.platform) {
      const picked = pickPlatform((m.parsed as ImageIndex).manifests ?? [], parsePlatform(flags.platform));
      if (!picked) throw new Error(`${formatReference(r)} has no image for ${flags.platform}`);
      m = await client.getManifest(r.repository, picked.digest);
    }
    if (flags.raw) {
      process.stdout.write(m.raw);
      return;
    }
    const name = formatReference(r);
    if (isIndexType(m.mediaType)) {
      const index = m.parsed as ImageIndex;
      const lines = [`Name:      ${name}`, `Digest:    ${m.digest}`, `MediaType: ${m.mediaType}`, 'Manifests:'];
      for (const d of index.manifests ?? []) {
        lines.push(`  ${d.digest}  ${d.platform ? formatPlatform(d.platform) : (d.artifactType ?? 'unknown/unknown')}  ${humanBytes(d.size)}`);
      }
      printResult(flags, { name, digest: m.digest, mediaType: m.mediaType, manifest: index }, lines.join('\n'));
      return;
    }
    const manifest = m.parsed as ImageManifest;
    const configBlob = manifest.config?.mediaType?.includes('image.config') || manifest.config?.mediaType?.includes('container.image')
      ? (JSON.parse((await client.readBlob(r.repository, manifest.config.digest)).toString('utf8')) as ImageConfig)
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
      `Config:    ${manifest.config?.digest}  ${humanBytes(manifest.config?.size ?? 0)}`,
      `Layers:    ${manifest.layers?.length ?? 0}, ${humanBytes(total)} in all`,
      ...(manifest.layers ?? []).map((l) => `  ${l.digest}  ${humanBytes(l.size)}  ${l.mediaType}`),
      ...(manifest.subject ? [`Subject:   ${manifest.subject.digest}`] : []),
    ];
    printResult(flags, { name, digest: m.digest, mediaType: m.mediaType, manifest, config: configBlob, size: total }, lines.join('\n'));
  });
}

