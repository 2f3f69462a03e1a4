import { defineConfig } from 'vitest/config';

export default defineConfig({
  define: { __ALLOY_VERSION__: JSON.stringify('test') },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
