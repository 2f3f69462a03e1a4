import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plugin } from 'vite';
import { filesUnder } from './files-under';

const SERVICE_WORKER = 'sw.js';

/**
 * Builds src/ui/service-worker.ts into `sw.js` beside index.html and writes into it the list of
 * files of the app shell (every emitted file and every public file, relative to the app's base)
 * with a version that changes with any of them, so the worker caches exactly this build. The page
 * learns the worker's file name through `__ALLOY_SERVICE_WORKER__`, defined in builds only (not by
 * the dev server, and not through NODE_ENV, which vitest sets to `test` for builds it starts).
 */
export function appShellPlugin(entry: string): Plugin {
  let publicDir = '';
  return {
    name: 'alloy-app-shell',
    apply: 'build',
    config: () => ({ define: { __ALLOY_SERVICE_WORKER__: JSON.stringify(SERVICE_WORKER) } }),
    configResolved(config) {
      publicDir = config.publicDir;
    },
    options(options) {
      const input = options.input;
      const inputs: Record<string, string> =
        typeof input === 'string' ? { index: input } : Array.isArray(input) ? { index: input[0] } : { ...(input ?? {}) };
      if (Object.keys(inputs).length === 0) inputs.index = 'index.html';
      return { ...options, input: { ...inputs, 'service-worker': entry } };
    },
    outputOptions(output) {
      const names = output.entryFileNames ?? 'assets/[name]-[hash].js';
      return {
        ...output,
        entryFileNames: (chunk) =>
          chunk.name === 'service-worker' ? SERVICE_WORKER : typeof names === 'function' ? names(chunk) : names,
      };
    },
    generateBundle(_options, bundle) {
      const publicFiles = publicDir && existsSync(publicDir) ? filesUnder(publicDir) : [];
      const files = ['./', 'index.html', ...Object.keys(bundle).filter((f) => f !== SERVICE_WORKER && !f.endsWith('.map')), ...publicFiles];
      const hash = createHash('sha256');
      for (const f of files) hash.update(`${f}\n`);
      for (const f of publicFiles) hash.update(readFileSync(join(publicDir, f)));
      const shell = JSON.stringify({ version: hash.digest('hex').slice(0, 16), files: [...new Set(files)] });
      const worker = bundle[SERVICE_WORKER];
      if (!worker || worker.type !== 'chunk') throw new Error(`the service worker ${entry} was not built`);
      worker.code = worker.code.replaceAll('__ALLOY_SHELL__', shell);
    },
  };
}
