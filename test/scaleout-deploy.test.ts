// deploy/scaleout (compose: PostgreSQL, an S3 store, two replicas, a load balancer) and
// deploy/kubernetes-scaleout (Deployment, PodDisruptionBudget, Service) agree with each
// other and with the server: every variable they set is a config key's, and the
// settings they give are a valid scale-out configuration. (No Docker or Kubernetes here.)

import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { ENV_KEYS, loadConfig } from '../src/config/config.js';

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const deploy = join(import.meta.dirname, '..', 'deploy');

describe('deploy/scaleout (compose)', () => {
  const compose = parse(readFileSync(join(deploy, 'scaleout', 'compose.yaml'), 'utf8')) as Doc;
  const replicas = Object.keys(compose.services).filter((s) => s.startsWith('berth-'));

  it('runs PostgreSQL, an S3 store, two Berth replicas on them and a load balancer', () => {
    expect(replicas).toEqual(['berth-1', 'berth-2']);
    for (const name of replicas) {
      const berth = compose.services[name];
      expect(berth.build.dockerfile).toBe('Dockerfile');
      expect(berth.depends_on.db.condition).toBe('service_healthy');
      expect(berth.depends_on['s3-bucket'].condition).toBe('service_completed_successfully');
      expect(berth.healthcheck.test.join(' ')).toContain('/readyz');
    }
    expect(compose.services.lb.ports).toEqual(['5000:5000']);
  });

  it('gives the replicas a valid scale-out configuration that points at the services', () => {
    const env = compose.services['berth-1'].environment as Record<string, string>;
    for (const name of Object.keys(env)) expect(Object.keys(ENV_KEYS), name).toContain(name);
    const config = loadConfig({ env });
    const db = compose.services.db.environment;
    expect(config.database?.url).toBe(`postgres://${db.POSTGRES_USER}:${db.POSTGRES_PASSWORD}@db:5432/${db.POSTGRES_DB}`);
    expect(config.storage.s3).toMatchObject({ endpoint: 'http://s3:9000', bucket: 'berth', forcePathStyle: true, redirect: false });
    expect(config.storage.s3?.secretKey).toBe(compose.services.s3.environment.MINIO_ROOT_PASSWORD);
    // The bucket the replicas use is the one the init container makes.
    expect(compose.services['s3-bucket'].entrypoint.join(' ')).toContain(`mc mb --ignore-existing s3/${config.storage.s3?.bucket}`);
  });

  it('balances over every replica, streaming bodies without a size limit', () => {
    const nginx = readFileSync(join(deploy, 'scaleout', 'nginx.conf'), 'utf8').replace(/#.*$/gm, '');
    const upstreams = [...nginx.matchAll(/^\s*server (\S+):5000/gm)].map((m) => m[1]);
    expect(upstreams).toEqual(replicas);
    expect(nginx).toMatch(/client_max_body_size 0;/);
    expect(nginx).toMatch(/proxy_request_buffering off;/);
    expect(nginx).not.toMatch(/ip_hash|sticky|hash \$/);
    expect(nginx).toMatch(/listen 5000;/);
  });
});

describe('deploy/kubernetes-scaleout', () => {
  const dir = join(deploy, 'kubernetes-scaleout');
  const docs = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS() as Doc));
  const kind = (k: string) => docs.filter((d) => d.kind === k);

  it('lists every manifest in its kustomization', () => {
    const kustomization = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Doc;
    expect([...kustomization.resources].sort()).toEqual(readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort());
  });

  it('runs several replicas that a rolling update or a drain never all take away', () => {
    const [deployment] = kind('Deployment');
    const [pdb] = kind('PodDisruptionBudget');
    const [service] = kind('Service');
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(deployment.spec.strategy).toMatchObject({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0 } });
    expect(pdb.spec.minAvailable).toBeGreaterThanOrEqual(1);
    expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    expect(deployment.spec.template.metadata.labels).toMatchObject(deployment.spec.selector.matchLabels);
    const container = deployment.spec.template.spec.containers[0];
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    // Nothing of the registry lives in the pod: no persistent volume.
    expect(deployment.spec.template.spec.volumes.every((v: Doc) => v.emptyDir)).toBe(true);
  });

  it('configures the drivers through config keys, secrets from a Secret', () => {
    const container = kind('Deployment')[0]!.spec.template.spec.containers[0];
    const env: Record<string, string> = {};
    for (const e of container.env as Doc[]) {
      expect(Object.keys(ENV_KEYS).concat('BERTH_LOG_FORMAT'), e.name).toContain(e.name);
      env[e.name] = e.value ?? (e.name === 'BERTH_DATABASE_URL' ? 'postgres://berth:x@postgres:5432/berth' : 'from-secret');
      if (/URL|KEY/.test(e.name)) expect(e.valueFrom?.secretKeyRef?.name, e.name).toBe('berth-storage');
    }
    const config = loadConfig({ env });
    expect(config.database?.url).toMatch(/^postgres:\/\//);
    expect(config.storage.s3).toMatchObject({ bucket: 'berth', accessKey: 'from-secret', secretKey: 'from-secret' });
  });
});
