import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Server tests bind random ports and use their own data directories, so files may run in parallel.
    pool: 'forks',
  },
});
