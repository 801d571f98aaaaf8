// What can be checked of the deployment files without Docker or Kubernetes: every YAML
// parses, the manifests agree with each other and with the server (probe paths, ports,
// mounts, the config they carry is valid), the systemd unit passes `systemd-analyze
// verify`, and the Dockerfile copies files that exist and runs a health check that works.

import { describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, parse } from 'yaml';
import { loadConfig } from '../src/config/config.js';
import { pushBlob, sha256, startTestServer } from './helpers/server.js';
import { SERVE_NODE_FLAGS } from '../src/cli/node-flags.js';

const root = join(import.meta.dirname, '..');
const deploy = join(root, 'deploy');
const run = promisify(execFile);

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

type Doc = any;

function k8s(kind: string): Doc {
  const docs = yamlFiles(join(deploy, 'kubernetes')).flatMap((f) => parseAllDocuments(readFileSync(f, 'utf8')).map((d) => d.toJS() as Doc));
  const found = docs.filter((d) => d?.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0];
}

async function loadConfigText(text: string) {
  const dir = await mkdtemp(join(tmpdir(), 'berth-deploy-'));
  try {
    await writeFile(join(dir, 'berth.yaml'), text);
    return loadConfig({ flags: { config: join(dir, 'berth.yaml') }, env: {} });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('deploy/', () => {
  it('every YAML file parses without errors', () => {
    const files = yamlFiles(deploy);
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const file of files) {
      for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
        expect(doc.errors.map(String), relative(root, file)).toEqual([]);
      }
    }
  });

  it('deploy/berth.yaml, the documented example, is a valid config', () => {
    const config = loadConfig({ flags: { config: join(deploy, 'berth.yaml') }, env: {} });
    expect(config).toMatchObject({ listen: '0.0.0.0:5000', data: '/var/lib/berth' });
  });

  it('the Kubernetes manifests agree with each other and with the server', async () => {
    const deployment = k8s('Deployment');
    const service = k8s('Service');
    const pvc = k8s('PersistentVolumeClaim');
    const configMap = k8s('ConfigMap');
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];

    expect(deployment.spec.strategy.type).toBe('Recreate'); // one writer of the SQLite database
    expect(deployment.spec.selector.matchLabels).toEqual(service.spec.selector);
    expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    expect(container.ports.map((p: Doc) => p.name)).toContain(service.spec.ports[0].targetPort);
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(container.resources.requests).toBeDefined();
    expect(container.resources.limits.memory).toBeDefined();
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);

    const volumes = Object.fromEntries(pod.volumes.map((v: Doc) => [v.name, v]));
    const mounts = Object.fromEntries(container.volumeMounts.map((m: Doc) => [m.name, m.mountPath]));
    expect(volumes.data.persistentVolumeClaim.claimName).toBe(pvc.metadata.name);
    expect(volumes.config.configMap.name).toBe(configMap.metadata.name);

    // The config it mounts is valid, at the path the args name, and keeps data on the volume.
    const configPath = container.args[container.args.indexOf('--config') + 1];
    expect(configPath).toBe(`${mounts.config}/berth.yaml`);
    const config = await loadConfigText(configMap.data['berth.yaml']);
    expect(config.data).toBe(mounts.data);
    expect(config.listen.endsWith(`:${container.ports[0].containerPort}`)).toBe(true);
    expect(deployment.spec.template.metadata.annotations['prometheus.io/path']).toBe(config.metrics.path);
  });

  it('the compose file builds the Dockerfile, keeps data in a volume and checks /readyz', () => {
    const compose = parse(readFileSync(join(deploy, 'compose.yaml'), 'utf8')) as Doc;
    const berth = compose.services.berth;
    expect(existsSync(join(deploy, berth.build.context, berth.build.dockerfile))).toBe(true);
    const [volume, target] = berth.volumes[0].split(':');
    expect(Object.keys(compose.volumes)).toContain(volume);
    expect(target).toBe('/var/lib/berth');
    const configMount = berth.volumes.find((v: string) => v.includes('/etc/berth/berth.yaml')).split(':')[0];
    expect(existsSync(join(deploy, configMount))).toBe(true);
    expect(berth.environment.BERTH_CONFIG).toBe('/etc/berth/berth.yaml');
    expect(berth.healthcheck.test.join(' ')).toContain('/readyz');
  });

  it('the systemd unit passes systemd-analyze verify', async (ctx) => {
    if (!existsSync('/usr/bin/systemd-analyze') && !existsSync('/bin/systemd-analyze')) {
      if (process.env.BERTH_REQUIRE_E2E === '1') throw new Error('systemd-analyze is not installed and BERTH_REQUIRE_E2E=1');
      process.stderr.write('skipping: systemd-analyze is not installed, the unit was not verified\n');
      return ctx.skip();
    }
    const unit = join(deploy, 'systemd', 'berth.service');
    const { stdout, stderr } = await run('systemd-analyze', ['verify', unit]);
    expect(`${stdout}${stderr}`.trim()).toBe('');
    expect(readFileSync(unit, 'utf8')).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const ignored = readFileSync(join(root, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

  it('copies only files that exist and that .dockerignore lets through', () => {
    const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    expect(copies.length).toBeGreaterThan(3);
    for (const source of copies) {
      expect(existsSync(join(root, source)), source).toBe(true);
      expect(ignored, source).not.toContain(source);
    }
    // tsconfig compiles these; the build stage must have them all.
    const tsconfig = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8')) as { include: string[] };
    for (const pattern of tsconfig.include) expect(copies, pattern).toContain(pattern.split('/')[0]);
  });

  it('runs as a non-root user with a data volume, and its health check works', async () => {
    expect(dockerfile).toMatch(/^FROM .* AS build$/m);
    expect(dockerfile).toMatch(/^USER (?!root|0\b)\S+$/m);
    expect(dockerfile).toMatch(/^VOLUME \["\/var\/lib\/berth"\]$/m);
    const entry = /^ENTRYPOINT \["node", (?:"--\S+", )*"\/app\/(\S+)\.js"\]$/m.exec(dockerfile)![1]!;
    expect(existsSync(join(root, `${entry.replace(/^dist\//, '')}.ts`))).toBe(true);

    // Run the HEALTHCHECK command itself against a ready and a not-ready server.
    const command = JSON.parse(/^\s+CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    expect(command.slice(0, 2)).toEqual(['node', '-e']);
    const check = (url: string) =>
      run(process.execPath, ['-e', command[2]!], { env: { ...process.env, BERTH_HEALTHCHECK_URL: url } }).then(
        () => 0,
        (err: { code: number }) => err.code,
      );
    const ready = await startTestServer();
    const full = await startTestServer({ health: { minFreeBytes: Number.MAX_SAFE_INTEGER } });
    try {
      expect(await check(`${ready.url}/readyz`)).toBe(0);
      expect(await check(`${full.url}/readyz`)).toBe(1);
      expect(await check('http://127.0.0.1:1/readyz')).toBe(1);
    } finally {
      await ready.destroy();
      await full.destroy();
    }
  });
});

describe('node flags of `berth serve` (src/cli/node-flags.ts)', () => {
  const main = join(root, 'dist', 'src', 'cli', 'main.js');
  const shebang = readFileSync(main, 'utf8').split('\n')[0]!;

  /**
   * Starts `berth serve` on a free port with `command`, runs `work` against its URL once
   * it listens, and resolves to its log up to then.
   */
  async function withServe(command: string[], work: (url: string) => Promise<void> = async () => undefined): Promise<string> {
    const data = await mkdtemp(join(tmpdir(), 'berth-flags-'));
    const child = spawn(command[0]!, [...command.slice(1), main, 'serve', '--listen', '127.0.0.1:0', '--data', data], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => {
          log += d.toString();
          const m = /"url":"([^"]+)"[^\n]*berth registry listening/.exec(log);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`berth serve exited with ${code}: ${log}`)));
      });
      await work(url);
      return log;
    } finally {
      child.kill('SIGKILL');
      await rm(data, { recursive: true, force: true });
    }
  }

  it('every launcher passes them: the script, npm start, the Dockerfile and the systemd unit', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    const launchers = {
      shebang,
      'npm start': pkg.scripts.start!,
      Dockerfile: /^ENTRYPOINT (.*)$/m.exec(readFileSync(join(root, 'Dockerfile'), 'utf8'))![1]!,
      systemd: /^ExecStart=(.*)$/m.exec(readFileSync(join(deploy, 'systemd', 'berth.service'), 'utf8'))![1]!,
    };
    for (const [name, line] of Object.entries(launchers)) {
      for (const flag of SERVE_NODE_FLAGS) expect(line, name).toContain(flag);
    }
  });

  it('started by its shebang, the server runs with them; by a bare `node`, it warns', async () => {
    expect(shebang).toMatch(/^#!\/usr\/bin\/env -S node /);
    // A large upload takes the --expose-gc path (src/server/heap.ts).
    const large = randomBytes(40 << 20);
    const withFlags = await withServe(shebang.slice(2).split(' '), async (url) => {
      expect(await pushBlob(url, 'flags/large', large)).toBe(sha256(large));
    });
    expect(withFlags).not.toContain('node was started without these flags');
    const bare = await withServe([process.execPath]);
    expect(bare).toContain('node was started without these flags');
    for (const flag of SERVE_NODE_FLAGS) expect(bare).toContain(flag);
  });
});
