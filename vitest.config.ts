import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  define: { __ALLOY_VERSION__: JSON.stringify('test') },
  test: {
    environment: 'node',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    globalSetup: ['test/helpers/build-wasm.setup.ts', 'test/helpers/temp-root.setup.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/gpu/**', 'test/e2e/**'],
        },
      },
      {
        // The app in headless Chromium (playwright-core, /usr/bin/chromium, WebGPU on SwiftShader,
        // real OPFS) against the fake hub: one file at a time, after the other projects.
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.e2e.test.ts'],
          fileParallelism: false,

          testTimeout: 180_000,
          hookTimeout: 300_000,
          sequence: { groupOrder: 2 },
        },
      },
      {
        // WebGPU (Dawn; SwiftShader without a GPU): each file in its own process, one at a time,
        // after the unit tests. `npm run test:gpu` runs them file by file and retries native crashes.
        extends: true,
        test: {
          name: 'gpu',
          include: ['test/gpu/**/*.gpu.test.ts'],
          setupFiles: ['test/gpu/setup.ts'],
          isolate: true,
          fileParallelism: false,
          maxWorkers: 1,
          testTimeout: 600_000,
          hookTimeout: 600_000,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
