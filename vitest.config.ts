import { defineConfig } from 'vitest/config';

/**
 * The HTTP suite, run a second time against two replicas on PostgreSQL + S3 (requests
 * alternating between them; test/helpers/replicas.ts), and the HTTP API tests against
 * `berth serve --workers 2` in a child process (test/helpers/server.ts,
 * BERTH_TEST_WORKERS): a request may land on another process than the one before it
 * (an upload's POST, PATCH and PUT, a GC run in another process). `--project berth`
 * runs only the first pass (`--project containers` the files that start containers).
 */
const REPLICA_SUITE = ['test/api-blobs.test.ts', 'test/api-manifests.test.ts', 'test/e2e-skopeo.test.ts'];
const WORKER_SUITE = ['test/api-blobs.test.ts', 'test/api-manifests.test.ts', 'test/gc.test.ts'];

/**
 * Files that start containers: runtime.test.ts checks after each test that no container
 * cgroup or mount is left on the host, which another file's running containers (a RUN
 * step of a build, a `run -d`) would fail. They run one at a time, beside the others.
 */
const CONTAINERS = ['test/runtime*.test.ts', 'test/build.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Server tests bind random ports and use their own data directories, so files may run in parallel.
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'berth', include: ['test/**/*.test.ts'], exclude: CONTAINERS } },
      { extends: true, test: { name: 'containers', include: CONTAINERS, fileParallelism: false } },
      {
        extends: true,
        test: { name: 'replicas', include: REPLICA_SUITE, env: { BERTH_TEST_REPLICAS: '1' }, setupFiles: ['test/helpers/replicas-setup.ts'] },
      },
      { extends: true, test: { name: 'workers-2', include: WORKER_SUITE, env: { BERTH_TEST_WORKERS: '2' } } },
    ],
  },
});
