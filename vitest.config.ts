import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // Generous: e2e files start real node processes (embedded Postgres, three federated nodes,
    // 10,000 writes) side by side on a shared 2-core machine; a test that needs longer says so.
    testTimeout: 180_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: more workers only queue on Postgres and make timings noisier.
    maxWorkers: 3,
  },
});
