import { mkdtempSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'vite';

let built: Promise<URL> | null = null;

/**
 * Bundles the Node pool worker entry from the current sources (as vite.cli.config.ts does for
 * the CLI) into a temporary folder, once per test process: vitest runs TypeScript, worker_threads
 * cannot load it.
 */
export function poolWorkerUrl(): Promise<URL> {
  built ??= (async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'alloy-pool-worker-'));
    await build({
      configFile: false,
      logLevel: 'silent',
      build: {
        ssr: 'src/backend/pool/node-worker.ts',
        outDir,
        target: 'node20',
        minify: false,
        rollupOptions: {
          external: [...builtinModules, ...builtinModules.map((m) => `node:${m}`)],
          output: { entryFileNames: 'pool-worker.js', format: 'es' },
        },
      },
      ssr: { noExternal: true },
    });
    return pathToFileURL(join(outDir, 'pool-worker.js'));
  })();
  return built;
}
