// Platforms (`os/arch[/variant]`) and picking one manifest out of an index.

import type { Descriptor, Platform } from './media-types.js';

const NODE_ARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips64el: 'mips64le',
};

export function parsePlatform(value: string): Platform {
  const [os, architecture, variant] = value.split('/');
  if (!os || !architecture) throw new Error(`invalid platform ${value}: expected os/arch[/variant], e.g. linux/amd64`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** The platform this process runs on, as image indexes name it (linux/amd64, linux/arm64/v8...). */
export function hostPlatform(): Platform {
  const architecture = NODE_ARCH[process.arch] ?? process.arch;
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  return architecture === 'arm' ? { os, architecture, variant: `v${(process.config.variables as { arm_version?: string }).arm_version ?? 7}` } : { os, architecture };
}

/** arm64 images are often labelled variant v8 or none; treat the two as equal. */
function variantMatches(want: Platform, have: Platform): boolean {
  if (!want.variant) return true;
  if (want.architecture === 'arm64' && (!have.variant || have.variant === 'v8') && want.variant === 'v8') return true;
  return want.variant === have.variant;
}

/** The index entry for `want`, or undefined; entries without a platform (attestations) never match. */
export function pickPlatform(manifests: Descriptor[], want: Platform): Descriptor | undefined {
  return manifests.find(
    (m) => m.platform && m.platform.os === want.os && m.platform.architecture === want.architecture && variantMatches(want, m.platform),
  );
}
