// `berth cert HOST`: a self-signed certificate and key for trying HTTPS. node:crypto
// makes keys but not X.509 certificates, so this runs the `openssl` command (Debian
// package `openssl`). The certificate is its own CA: give it to clients as ca.crt
// (docker: /etc/docker/certs.d/HOST:PORT/ca.crt; skopeo: --cert-dir).

import type { Command } from 'commander';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertFiles {
  cert: string;
  key: string;
}

/** Host names and IP addresses in subjectAltName: clients check the name there, not in CN. */
export function subjectAltNames(hosts: string[]): string {
  return hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
}

export async function makeSelfSignedCert(hosts: string[], dir: string, days: number): Promise<CertFiles> {
  const files = { cert: join(dir, `${hosts[0]}.crt`), key: join(dir, `${hosts[0]}.key`) };
  await mkdir(dir, { recursive: true });
  try {
    await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-days', String(days),
      '-subj', `/CN=${hosts[0]}`,
      '-addext', `subjectAltName=${subjectAltNames(hosts)}`,
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,digitalSignature,keyCertSign',
      '-addext', 'extendedKeyUsage=serverAuth',
      '-keyout', files.key, '-out', files.cert,
    ]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('berth cert needs the openssl command (Debian/Ubuntu: apt-get install openssl)');
    }
    throw new Error(`openssl failed: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
  return files;
}

export function register(program: Command): void {
  program
    .command('cert')
    .description('make a self-signed TLS certificate and key for testing (runs openssl)')
    .argument('<host...>', 'host names or IP addresses the certificate is for; the first names the files')
    .option('--out <dir>', 'directory for HOST.crt and HOST.key', '.')
    .option('--days <n>', 'validity in days', '365')
    .action(async (hosts: string[], opts: { out: string; days: string }) => {
      const days = Number(opts.days);
      if (!Number.isInteger(days) || days < 1) throw new Error(`--days: expected a positive integer, got ${opts.days}`);
      const files = await makeSelfSignedCert(hosts, opts.out, days);
      process.stdout.write(
        [
          `certificate: ${files.cert}`,
          `key:         ${files.key} (keep it private)`,
          '',
          `serve:  berth serve --tls-cert ${files.cert} --tls-key ${files.key}`,
          `docker: mkdir -p /etc/docker/certs.d/${hosts[0]}:5000 && cp ${files.cert} /etc/docker/certs.d/${hosts[0]}:5000/ca.crt`,
          `skopeo: mkdir certs && cp ${files.cert} certs/ca.crt, then --dest-cert-dir certs (or --src-cert-dir)`,
          '',
        ].join('\n'),
      );
    });
}
