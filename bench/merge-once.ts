import { runCli } from '../src/cli/main';

/**
 * Child process of the benchmark: runs one CLI merge and prints its own peak RSS, so every
 * measurement starts from a fresh process. argv: the `alloy` arguments.
 */
const args = process.argv.slice(2);
const started = performance.now();
let stderr = '';
const code = await runCli(args, {
  stdout: () => undefined,
  stderr: (t) => (stderr += t),
  cwd: process.cwd(),
  isTTY: false,
  columns: 80,
});
const seconds = (performance.now() - started) / 1000;
process.stdout.write(JSON.stringify({ code, seconds, peakRssBytes: process.resourceUsage().maxRSS * 1024, stderr }) + '\n');
