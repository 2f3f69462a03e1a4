import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// Builds test/e2e/harness (a page that drives the engine worker alone) into dist/e2e-harness.
export default defineConfig({
  root: fileURLToPath(new URL('./harness', import.meta.url)),
  base: './',
  logLevel: 'warn',
  worker: { format: 'es' },
  build: {
    outDir: fileURLToPath(new URL('../../dist/e2e-harness', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    minify: false,
    sourcemap: true,
  },
});
