import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { appShellPlugin } from './scripts/app-shell-plugin';

// The browser app. The CLI has its own build (vite.cli.config.ts); tests use vitest.config.ts.
// A relative base: the built app works from any static host under any sub-path (a Space, a CDN
// folder, file servers); workers, wasm and demo models are resolved against the page.
export default defineConfig({
  base: './',
  plugins: [svelte(), appShellPlugin('src/ui/service-worker.ts')],
  worker: { format: 'es' },
  build: { outDir: 'dist/app', target: 'es2022' },
});
