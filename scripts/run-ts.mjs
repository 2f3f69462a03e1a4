#!/usr/bin/env node
// Runs a TypeScript script through Vite's module runner (Node 20 cannot strip types itself):
//   node scripts/run-ts.mjs scripts/generate-demo-models.ts [args…]
// The module must export `main(args)`.
import { resolve } from 'node:path';
import { runnerImport } from 'vite';

const [file, ...args] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node scripts/run-ts.mjs FILE.ts [args…]\n');
  process.exit(2);
}
const { module } = await runnerImport(resolve(file));
if (typeof module.main !== 'function') {
  process.stderr.write(`${file} exports no main(args)\n`);
  process.exit(2);
}
await module.main(args);
