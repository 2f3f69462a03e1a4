#!/usr/bin/env node
// Runs every WebGPU test file (test/gpu/*.gpu.test.ts) in a vitest process of its own, one after
// the other. Dawn on SwiftShader sometimes dies natively (SIGSEGV, SIGABRT, futex or mutex
// assertions) or hangs (docs/browser.md §5.1): a file whose process crashed or hung is run again,
// up to 3 times in all. A file whose tests fail is never retried.
//
// Usage: node test/gpu/run-isolated.mjs [name-filter…]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ATTEMPTS = 3;
const FILE_TIMEOUT_MS = 20 * 60_000;
const NATIVE_FAILURE =
  /Worker exited unexpectedly|Worker forks emitted error|SIGSEGV|SIGABRT|SIGBUS|Segmentation fault|futex facility|pthread_mutex_lock|std::system_error|did not answer within|took more than \d+ s/;

const root = fileURLToPath(new URL('../..', import.meta.url));
const vitest = fileURLToPath(new URL('../../node_modules/vitest/vitest.mjs', import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(new URL('.', import.meta.url))
  .filter((f) => f.endsWith('.gpu.test.ts') && (filters.length === 0 || filters.some((x) => f.includes(x))))
  .sort()
  .map((f) => `test/gpu/${f}`);

const failed = [];
for (const file of files) {
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const run = spawnSync(process.execPath, [vitest, 'run', '--project', 'gpu', file], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: FILE_TIMEOUT_MS,
      maxBuffer: 64 * 1024 * 1024,
    });
    process.stdout.write(run.stdout ?? '');
    process.stderr.write(run.stderr ?? '');
    if (run.status === 0) break;
    const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
    const native = run.signal !== null || run.error !== undefined || NATIVE_FAILURE.test(output);
    const why = run.signal ? `signal ${run.signal}` : run.error ? run.error.message : native ? 'a native crash or hang' : 'failing tests';
    if (native && attempt < ATTEMPTS) {
      process.stderr.write(`\n${file}: ${why}; running it again (attempt ${attempt + 1} of ${ATTEMPTS})\n\n`);
      continue;
    }
    failed.push(`${file} (${why}${attempt > 1 ? `, after ${attempt} attempts` : ''})`);
    break;
  }
}
if (failed.length > 0) {
  process.stderr.write(`\nWebGPU test files that failed:\n${failed.map((f) => `  ${f}`).join('\n')}\n`);
  process.exit(1);
}
process.stdout.write(`\nAll ${files.length} WebGPU test files passed.\n`);
