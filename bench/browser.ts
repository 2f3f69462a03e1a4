/**
 * `npm run bench:browser`: the built app in headless Chromium (Debian's, driven by playwright-core)
 * merges three generated bf16 Llama-layout models (≥ 1 GB of input at the default scale) through
 * the app's own UI, once from local folders (the folder picker) and once from the local fake Hub,
 * with the app's own backend choice. For each run it reports the time from "Start merge" to the
 * Result step, MB/s of input, the read/compute/write split the Run step showed last, and the
 * peak memory (PSS) of all browser processes together, sampled each second, and the CPU seconds
 * the browser's threads took during the merge (by process type and thread name; the pool's
 * workers end with the merge, so theirs are the renderer's "ended threads"). The CLI's time on
 * the same models (median of three runs) sits beside it. Before each run, the CLI's and the app's,
 * a file of the output's size is written and deleted (`pageCacheFloor`), so that both write their
 * output into the same kind of page cache. Not a test: nothing is asserted. JSON goes to
 * DIR/browser-results.json.
 *
 * Modes: `local` (folders through the file input), `hub` (the fake Hub, models downloaded into the
 * OPFS cache first), `cached` (the same, timing a second merge whose files are all in the cache
 * already), `stream` (the fake Hub, Settings → stream: read by large ranges while merging,
 * nothing cached), `folder` (hub, cached, output saved into a picked folder as it is written) and
 * `stream-folder` (streamed and saved into a folder: the laptop case, nothing of the models or the
 * output in the browser's storage). The folder picker is stubbed with an OPFS folder, as in
 * test/e2e/app-disk.e2e.test.ts (headless Chromium shows no picker). Each row also gives the
 * browser profile's size on disk after the merge (OPFS cache and outputs included).
 *
 * Options: --methods a,b (default linear,ties), --modes local,hub,cached,stream,folder,stream-folder
 * (default local,hub), --scale N (model size multiplier, default 1 ≈ 3 × 337 MB; 3 ≈ 3 × 1 GB),
 * --repeat N (timed runs of each row, each in a fresh browser, default 1: the row reports the median
 * run, with every run's time in `runsSeconds`; one run varies by ±30 % on these VMs), --dir DIR
 * (default .bench), --trace (a Chrome trace of each timed merge, DIR/trace-METHOD-MODE-RUN.json;
 * tracing slows the merge). A `local` row also gives `readFloorSeconds`: the time this browser
 * takes only to read the picked files (blob-read-floor.ts), under which no merge from picked
 * folders can go, and the CPU seconds that reading took (`readFloorCpuSeconds`). Every row gives
 * the CPU seconds of all the browser's processes (`cpuTotalSeconds`, the sum of `cpuSeconds`, whose
 * threads under 0.05 s are left out) and `cpuPerCoreOverCli`: that total over the machine's cores,
 * against the CLI's time, the least app/CLI ratio this much work allows however well it overlaps.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'vite';
import { launchBrowser, type BrowserSession } from '../test/e2e/browser';
import { serveStatic } from '../test/e2e/static-server';
import { FakeHub } from '../test/fakehub/server';
import { blobReadFloor, type ReadFloor } from './blob-read-floor';
import { startChromeTrace } from './chrome-trace';
import { writeBenchModel, type BenchModelSpec } from './generate-models';

const MODELS = ['base', 'ft1', 'ft2'] as const;

/** The CLI's time is the median of this many runs (one run varied by ±20 % on these machines). */
const CLI_RUNS = 3;

/**
 * How often the browser's memory is sampled. Summing smaps_rollup over every browser process takes
 * about 50 ms of CPU (the kernel walks their page tables); every 200 ms that took a quarter of one
 * of the two cores from the merge being timed.
 */
const PSS_SAMPLE_MS = 1000;

/** How long a merge may run before the bench stops and reports what the page showed. */
const MERGE_TIMEOUT_MS = 600_000;

const CONFIGS: Record<string, (name: (m: (typeof MODELS)[number]) => string) => string> = {
  linear: (n) => `models:
  - {model: ${n('base')}, parameters: {weight: 0.4}}
  - {model: ${n('ft1')}, parameters: {weight: 0.3}}
  - {model: ${n('ft2')}, parameters: {weight: 0.3}}
merge_method: linear
dtype: bfloat16
`,
  ties: (n) => `models:
  - {model: ${n('ft1')}, parameters: {weight: 0.5, density: 0.5}}
  - {model: ${n('ft2')}, parameters: {weight: 0.5, density: 0.5}}
merge_method: ties
base_model: ${n('base')}
dtype: bfloat16
`,
};

const MODES = ['local', 'hub', 'cached', 'stream', 'folder', 'stream-folder'] as const;
type Mode = (typeof MODES)[number];

interface Options {
  readonly methods: string[];
  readonly modes: Mode[];
  readonly scale: number;
  /** Timed runs of each row, each in a fresh browser; the row shows the median one. */
  readonly repeat: number;
  readonly dir: string;
  /** Writes a Chrome trace of each timed merge into `dir` (chrome-trace.ts). */
  readonly trace: boolean;
}

function parseOptions(args: readonly string[]): Options {
  const option = (name: string, fallback: string): string => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
  };
  const methods = option('methods', 'linear,ties').split(',');
  for (const m of methods) if (!CONFIGS[m]) throw new Error(`--methods: no browser bench config for ${m} (have ${Object.keys(CONFIGS).join(', ')})`);
  const modes = option('modes', 'local,hub').split(',') as Options['modes'];
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes takes ${MODES.join(', ')}, not ${m}`);
  const repeat = Number(option('repeat', '1'));
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat takes a whole number of runs from 1, not ${option('repeat', '')}`);
  return { methods, modes, scale: Number(option('scale', '1')), repeat, dir: resolve(option('dir', '.bench')), trace: args.includes('--trace') };
}

/** A process and its descendants (/proc), root first. */
function processTree(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(statFields(readFileSync(`/proc/${entry}/stat`, 'utf8'))[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // the process ended meanwhile
    }
  }
  const tree: number[] = [];
  const stack = [rootPid];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    tree.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** The fields of a /proc stat line after the command name: [0] state, [1] ppid, [11] utime, [12] stime. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Sums PSS over a process and its descendants, in bytes. */
function treePssBytes(rootPid: number): number {
  let total = 0;
  for (const pid of processTree(rootPid)) {
    try {
      const pss = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      if (pss) total += Number(pss[1]) * 1024;
    } catch {
      // gone, or not readable
    }
  }
  return total;
}

/**
 * CPU seconds (user + system) so far of a process and its descendants, by "process type / thread
 * name"; the seconds of threads that ended count as the process type's "(ended threads)".
 */
function treeCpuSeconds(rootPid: number): Map<string, number> {
  const totals = new Map<string, number>();
  const add = (key: string, seconds: number): void => void totals.set(key, (totals.get(key) ?? 0) + seconds);
  const seconds = (fields: string[]): number => (Number(fields[11]) + Number(fields[12])) / 100;
  for (const pid of processTree(rootPid)) {
    try {
      const type = /--type=([\w-]+)/.exec(readFileSync(`/proc/${pid}/cmdline`, 'utf8'))?.[1] ?? 'browser';
      // The process's own total counts its ended threads too (a merge's pool workers end with it).
      let ended = seconds(statFields(readFileSync(`/proc/${pid}/stat`, 'utf8')));
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+$/, '');
        const own = seconds(statFields(stat));
        add(`${type}/${name}`, own);
        ended -= own;
      }
      add(`${type}/(ended threads)`, ended);
    } catch {
      // gone
    }
  }
  return totals;
}

/**
 * Writes a file of `bytes` zeros in `dir` and deletes it, as the shared harness does before every
 * run (../shared/bench/perf_vs_mergekit.py, "floor"): the output that follows fills the page cache
 * this freed. On the test VMs a page not touched for a while costs several times more to fill (the
 * host backs it first): Linear's CLI merge took 1.5 s into a new folder and 0.6 s after such a
 * file, and the app's output, a new OPFS file, met whichever the merges before it left.
 */
function pageCacheFloor(dir: string, bytes: number): void {
  const path = join(dir, 'alloy-bench-floor.bin');
  const piece = new Uint8Array(1 << 20);
  const fd = openSync(path, 'w');
  try {
    for (let at = 0; at < bytes; at += piece.length) writeSync(fd, piece, 0, Math.min(piece.length, bytes - at));
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
}

/** Bytes on disk under a folder (the browser profile: OPFS cache and outputs included). */
function duBytes(dir: string): number {
  try {
    return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split(/\s/)[0]);
  } catch {
    return NaN;
  }
}

/** The browser's main process: the chromium whose command line names this session's profile. */
function browserPid(profileHint: string): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(profileHint) && !cmd.includes('--type=')) return Number(entry);
    } catch {
      // gone
    }
  }
  throw new Error(`no chromium process with ${profileHint} found`);
}

async function mergeInApp(
  session: BrowserSession,
  siteUrl: string,
  hubUrl: string,
  yaml: string,
  localDirs: readonly string[],
  how: { readonly inputMode: 'cache' | 'stream'; readonly folder: boolean },
  browserPid: number,
  outputBytes: number,
  tracePath?: string,
): Promise<{ seconds: number; split: string | null; unverified: string | null; cpu: Record<string, number> }> {
  const page = session.page;
  if (how.folder) {
    await session.context.addInitScript(() => {
      (window as unknown as { showDirectoryPicker: () => Promise<FileSystemDirectoryHandle> }).showDirectoryPicker = async () =>
        (await navigator.storage.getDirectory()).getDirectoryHandle('picked-folder', { create: true });
    });
  }
  await page.setViewportSize({ width: 1440, height: 1200 });
  await page.goto(`${siteUrl}/?hub=${encodeURIComponent(hubUrl)}`);
  await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
  const confirm = page.getByRole('button', { name: /^(Use|Trust|Confirm)\b/ });
  if (await confirm.count()) await confirm.first().click();
  await page.getByRole('button', { name: 'Settings' }).click();
  await page.getByTestId(`input-mode-${how.inputMode}`).check();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByTestId(`input-mode-${how.inputMode}`).waitFor({ state: 'detached' });
  const clear = page.getByRole('button', { name: 'Clear' });
  if (await clear.isEnabled()) await clear.click();
  for (const dir of localDirs) await page.locator('input[webkitdirectory]').first().setInputFiles(dir);
  await page.locator('#yaml-editor').fill(yaml);
  await page.getByText('valid', { exact: true }).waitFor();
  await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
  await page.getByRole('cell', { name: 'model.safetensors', exact: true }).waitFor({ timeout: 600_000 });
  if (how.folder) {
    await page.getByTestId('choose-output-folder').click();
    await page.getByTestId('output-folder-name').waitFor();
  }
  pageCacheFloor(tmpdir(), outputBytes);
  const trace = tracePath ? await startChromeTrace(page) : null;
  const cpuBefore = treeCpuSeconds(browserPid);
  const started = performance.now();
  await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
  // Watched with querySelector alone, every 50 ms: Playwright's role and text queries, every 250 ms
  // before, walk the whole page (ARIA roles, names, text) and took a visible share of the two cores
  // from the merge being timed, and the end was seen up to 250 ms late.
  const result = how.folder ? '[data-testid="saved-to-folder"]' : '#push-title';
  const ended = await page
    .waitForFunction(
      (selector) => (document.querySelector(selector) ? 'done' : document.querySelector('[role=alert]') ? 'failed' : null),
      result,
      { polling: 50, timeout: MERGE_TIMEOUT_MS },
    )
    .catch(async (error: unknown) => {
      // A merge that did not end (timed out, or the page crashed): what the page showed (step,
      // progress) says where it stopped.
      const shown = await page.evaluate(() => document.body.innerText).catch(() => '(the page could not be read)');
      throw new Error(`the merge did not end (${(error as Error).message}); the page showed:\n${shown.slice(-3000)}\n${session.log.join('\n')}`);
    });
  if ((await ended.jsonValue()) === 'failed') {
    throw new Error(`the merge failed in the app: ${await page.getByRole('alert').first().textContent()}\n${session.log.join('\n')}`);
  }
  const seconds = (performance.now() - started) / 1000;
  // CPU seconds of the merge, most first; below 0.05 s left out.
  const used = [...treeCpuSeconds(browserPid)].map(([key, s]) => [key, s - (cpuBefore.get(key) ?? 0)] as const);
  const cpu = Object.fromEntries(used.filter(([, s]) => s >= 0.05).sort((a, b) => b[1] - a[1]).map(([key, s]) => [key, Number(s.toFixed(2))]));
  await trace?.stop(tracePath!);
  const note = page.getByTestId('unverified-note');
  const unverified = (await note.count()) ? ((await note.textContent())?.trim() ?? null) : null;
  // The whole merge's split, as the Run step states it once the merge is done.
  await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Run/ }).click();
  const final = page.getByTestId('final-stage-split');
  const split = (await final.count()) ? ((await final.textContent())?.trim() ?? null) : null;
  return { seconds, split, unverified, cpu };
}

interface ModeRun {
  readonly seconds: number;
  readonly split: string | null;
  readonly unverified: string | null;
  readonly cpu: Record<string, number>;
  readonly peakPss: number;
  readonly rangeRequests: number;
  readonly profileBytes: number;
  /** `local`: only reading the picked files through their Blobs (blob-read-floor.ts). */
  readonly readFloor?: ReadFloor;
}

/** One timed merge of `mode` in a browser of its own (a fresh profile: nothing cached from an earlier run). */
async function runMode(
  mode: Mode,
  config: (typeof CONFIGS)[string],
  modelsDir: string,
  siteUrl: string,
  hub: FakeHub,
  modelBytes: number,
  tracePath?: string,
): Promise<ModeRun> {
  const session = await launchBrowser();
  const pid = browserPid(session.profile);
  let peak = treePssBytes(pid);
  const sampler = setInterval(() => (peak = Math.max(peak, treePssBytes(pid))), PSS_SAMPLE_MS);
  try {
    const yaml = config((m) => (mode === 'local' ? m : `bench/${m}`));
    const dirs = mode === 'local' ? MODELS.map((m) => join(modelsDir, m)) : [];
    const how = { inputMode: mode === 'stream' || mode === 'stream-folder' ? ('stream' as const) : ('cache' as const), folder: mode.endsWith('folder') };
    hub.resetLog();
    // `cached`: the Hub's files are downloaded by a first merge, and the second one is timed.
    if (mode === 'cached') await mergeInApp(session, siteUrl, hub.url, yaml, dirs, how, pid, modelBytes);
    hub.resetLog();
    const timed = await mergeInApp(session, siteUrl, hub.url, yaml, dirs, how, pid, modelBytes, tracePath);
    const rangeRequests = hub.requests.filter((r) => r.server === 'cdn' && r.range !== null).length;
    clearInterval(sampler);
    const totalCpu = (): number => [...treeCpuSeconds(pid).values()].reduce((a, b) => a + b, 0);
    const readFloor = mode === 'local' ? await blobReadFloor(session.context, dirs.map((d) => join(d, 'model.safetensors')), totalCpu) : undefined;
    return { ...timed, peakPss: peak, rangeRequests, profileBytes: duBytes(session.profile), ...(readFloor !== undefined ? { readFloor } : {}) };
  } finally {
    clearInterval(sampler);
    await session.close();
  }
}

export async function main(args: readonly string[]): Promise<void> {
  const options = parseOptions(args);
  const spec: BenchModelSpec = { hidden: 2048, intermediate: 5632, layers: Math.max(1, Math.round(3 * options.scale)), vocab: 8192 };
  const modelsDir = join(options.dir, 'models');
  mkdirSync(modelsDir, { recursive: true });
  const sizes = [
    await writeBenchModel(join(modelsDir, 'base'), spec, 1),
    await writeBenchModel(join(modelsDir, 'ft1'), spec, 2, 1),
    await writeBenchModel(join(modelsDir, 'ft2'), spec, 3, 1),
  ];
  process.stderr.write(`browser bench models: 3 × ${(sizes[0] / 1e6).toFixed(0)} MB in ${modelsDir}\n`);

  const root = resolve(import.meta.dirname, '..');
  const appDir = mkdtempSync(join(tmpdir(), 'alloy-bench-app-'));
  await build({ root, logLevel: 'warn', build: { outDir: appDir, emptyOutDir: true } });
  const hub = await FakeHub.start();
  for (const m of MODELS) hub.addModelDir(`bench/${m}`, join(modelsDir, m));
  const site = await serveStatic(appDir);
  const results = [];
  const cores = availableParallelism();
  try {
    for (const method of options.methods) {
      const config = CONFIGS[method];
      const inputBytes = MODELS.length * sizes[0];
      // The CLI on the same models, for the ratio.
      writeFileSync(join(modelsDir, `${method}.yml`), config((m) => m));
      const cliOut = join(modelsDir, `cli-out-${method}`);
      rmSync(cliOut, { recursive: true, force: true });
      const cliRuns: number[] = [];
      for (let run = 0; run < CLI_RUNS; run++) {
        pageCacheFloor(modelsDir, sizes[0]);
        const cliStarted = performance.now();
        execFileSync(process.execPath, [join(root, 'bin/alloy.js'), 'merge', `${method}.yml`, cliOut, '--quiet'], { cwd: modelsDir });
        cliRuns.push((performance.now() - cliStarted) / 1000);
        rmSync(cliOut, { recursive: true, force: true });
      }
      const cliSeconds = cliRuns.sort((a, b) => a - b)[CLI_RUNS >> 1];
      for (const mode of options.modes) {
        const runs: ModeRun[] = [];
        for (let r = 0; r < options.repeat; r++) {
          const tracePath = options.trace ? join(options.dir, `trace-${method}-${mode}-${r + 1}.json`) : undefined;
          runs.push(await runMode(mode, config, modelsDir, site.url, hub, sizes[0], tracePath));
        }
        // The run of median time (the faster middle one of an even count), with every run's time beside it.
        const median = [...runs].sort((a, b) => a.seconds - b.seconds)[(runs.length - 1) >> 1];
        // However well the work overlaps, the merge takes at least its CPU seconds over the cores.
        const cpuTotal = Object.values(median.cpu).reduce((a, b) => a + b, 0);
        const row = {
          method,
          mode,
          inputBytes,
          seconds: Number(median.seconds.toFixed(2)),
          ...(runs.length > 1 ? { runsSeconds: runs.map((x) => Number(x.seconds.toFixed(2))) } : {}),
          inputMBps: Number((inputBytes / 1e6 / median.seconds).toFixed(1)),
          cliSeconds: Number(cliSeconds.toFixed(2)),
          appOverCli: Number((median.seconds / cliSeconds).toFixed(2)),
          ...(median.readFloor !== undefined
            ? {
                readFloorSeconds: Number(median.readFloor.seconds.toFixed(2)),
                readFloorOverCli: Number((median.readFloor.seconds / cliSeconds).toFixed(2)),
                readFloorCpuSeconds: Number(median.readFloor.cpuSeconds.toFixed(2)),
              }
            : {}),
          split: median.split,
          browserPeakPssMB: Number((median.peakPss / 1e6).toFixed(0)),
          rangeRequests: median.rangeRequests,
          profileDiskMB: Number((median.profileBytes / 1e6).toFixed(0)),
          cpuSeconds: median.cpu,
          cpuTotalSeconds: Number(cpuTotal.toFixed(2)),
          cpuPerCoreOverCli: Number((cpuTotal / cores / cliSeconds).toFixed(2)),
          ...(median.unverified ? { unverified: median.unverified } : {}),
        };
        results.push(row);
        process.stderr.write(`${JSON.stringify(row)}\n`);
      }
    }
  } finally {
    await site.close();
    await hub.close();
    rmSync(appDir, { recursive: true, force: true });
  }
  const report = { date: new Date().toISOString(), spec, results };
  writeFileSync(join(options.dir, 'browser-results.json'), JSON.stringify(report, null, 2));
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
}
