#!/usr/bin/env node
// Entry point of `npx alloy`: runs the bundled CLI that `npm ci` builds (the `prepare` script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  process.stderr.write(
    `alloy: the CLI is not built (${main} is missing).\nRun \`npm ci\` or \`npm run build:cli\` in the Alloy folder first.\n`,
  );
  process.exit(2);
}
const { runCli } = await import(main);
process.exitCode = await runCli(process.argv.slice(2));
