import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { defineConfig } from 'vite';

// Bundles the Node CLI (src/cli/main.ts) into dist/cli/main.js so `npx alloy` runs without a
// TypeScript loader, and the CPU pool's worker (src/backend/pool/node-worker.ts) beside it as
// dist/cli/pool-worker.js, where the CLI finds it (new URL('./pool-worker.js', import.meta.url)). WGSL shaders are inlined through `?raw` imports like in the app.
const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

export default defineConfig({
  // The app's public/ (icon, manifest, demo models) belongs to the web build only.
  publicDir: false,
  define: { __ALLOY_VERSION__: JSON.stringify(pkg.version) },
  build: {
    ssr: true,
    outDir: 'dist/cli',
    target: 'node20',
    emptyOutDir: true,
    minify: false,
    sourcemap: true,
    rollupOptions: {
      external: [...builtinModules, ...builtinModules.map((m) => `node:${m}`), 'webgpu'],
      input: { main: 'src/cli/main.ts', 'pool-worker': 'src/backend/pool/node-worker.ts' },
      // Shared code goes beside the entries, so import.meta.url means dist/cli/ in all of them.
      output: { entryFileNames: '[name].js', chunkFileNames: '[name]-[hash].js', format: 'es' },
    },
  },
  ssr: { noExternal: true, external: ['webgpu'] },
});
