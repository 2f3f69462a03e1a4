import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { defineConfig } from 'vite';

// Bundles the Node CLI (src/cli/main.ts) into dist/cli/main.js so `npx alloy` runs without a
// TypeScript loader. WGSL shaders are inlined through `?raw` imports like in the app.
const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

export default defineConfig({
  define: { __ALLOY_VERSION__: JSON.stringify(pkg.version) },
  build: {
    ssr: 'src/cli/main.ts',
    outDir: 'dist/cli',
    target: 'node20',
    emptyOutDir: true,
    minify: false,
    sourcemap: true,
    rollupOptions: {
      external: [...builtinModules, ...builtinModules.map((m) => `node:${m}`), 'webgpu'],
      output: { entryFileNames: 'main.js', format: 'es' },
    },
  },
  ssr: { noExternal: true, external: ['webgpu'] },
});
