import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The browser app. The CLI has its own build (vite.cli.config.ts); tests use vitest.config.ts.
export default defineConfig({
  plugins: [svelte()],
  worker: { format: 'es' },
  build: { outDir: 'dist/app', target: 'es2022' },
});
