import { builtinModules } from 'node:module';
import { defineConfig } from 'vite';

// Builds the benchmark (bench/*.ts) for Node, like the CLI build.
export default defineConfig({
  publicDir: false,
  define: { __ALLOY_VERSION__: JSON.stringify('bench') },
  build: {
    ssr: true,
    outDir: 'dist/bench',
    target: 'node20',
    emptyOutDir: true,
    minify: false,
    rollupOptions: {
      input: { run: 'bench/run.ts', 'merge-once': 'bench/merge-once.ts', 'forward-once': 'bench/forward-once.ts', 'pool-worker': 'src/backend/pool/node-worker.ts' },
      external: [...builtinModules, ...builtinModules.map((m) => `node:${m}`), 'webgpu'],
      output: { entryFileNames: '[name].js', chunkFileNames: '[name]-[hash].js', format: 'es' },
    },
  },
  ssr: { noExternal: true, external: ['webgpu'] },
});
