/**
 * What a new user trips on (issue 15, item 4), in the built app with the real worker, the fake Hub
 * and the demo models: no backend badge before the engine chose one; the density slider at the
 * value in force and placeholders shown whole; method names that wrap beside their badges; one
 * rule for the output name (hint and error agree); the WebGPU-only failure said once; links to the
 * configured Hub, not huggingface.co; "Start merge" in view on Review at 1440×900; the folder save
 * preferred over one download per file. The folder picker is stubbed as in app-disk.e2e.test.ts
 * (an OPFS folder stands in for the folder the user would pick).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TIES_YAML, type HubModels } from '../fakehub/models';
import type { FakeHub } from '../fakehub/server';
import { chromiumAvailable, launchBrowser, type BrowserSession } from './browser';
import { startAppEnvironment, type AppEnvironment } from './app-environment';
import type { StaticServer } from './static-server';
import type { Page } from 'playwright-core';

let hub: FakeHub;
let models: HubModels;
let site: StaticServer;
let browser: BrowserSession;

const steps = (page: Page) => page.getByRole('navigation', { name: 'Steps' });

async function openApp(page: Page, query = ''): Promise<void> {
  await page.setViewportSize({ width: 1440, height: 900 });
  await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}${query}`);
  await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
}

async function useYaml(page: Page, yaml: string, modelCount: number): Promise<void> {
  await page.locator('#yaml-editor').fill(yaml);
  await page.getByText('valid', { exact: true }).waitFor();
  await expect.poll(() => page.locator('tbody tr', { hasText: 'LlamaForCausalLM' }).count(), { timeout: 60_000, message: browser.log.join('\n') }).toBe(modelCount);
}

async function settings(page: Page, backend: 'auto' | 'webgpu' | 'cpu'): Promise<void> {
  await page.getByRole('button', { name: 'Settings' }).click();
  await page.locator(`input[type=radio][value=${backend}]`).check();
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await page.locator(`input[type=radio][value=${backend}]`).waitFor({ state: 'detached' });
}

/** The files under an OPFS folder path, with their sizes (read in the page). */
async function opfsFolder(page: Page, path: readonly string[]): Promise<Record<string, number>> {
  return page.evaluate(async (path) => {
    let dir = await navigator.storage.getDirectory();
    for (const name of path) dir = await dir.getDirectoryHandle(name);
    const out: Record<string, number> = {};
    for await (const [name, handle] of (dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
      if (handle.kind === 'file') out[name] = (await (handle as FileSystemFileHandle).getFile()).size;
    }
    return out;
  }, path);
}

describe.skipIf(!chromiumAvailable())('the app as a new user meets it (real worker, fake hub)', () => {
  let env: AppEnvironment;
  beforeAll(async () => {
    env = await startAppEnvironment({ demoModels: true });
    ({ hub, models, site, browser } = env);
    // The stub picker (app-disk.e2e.test.ts); `?nofolder` stands for a browser without it (Firefox, Safari).
    await browser.context.addInitScript(() => {
      const w = window as unknown as { showDirectoryPicker?: () => Promise<FileSystemDirectoryHandle> };
      w.showDirectoryPicker = new URLSearchParams(location.search).has('nofolder')
        ? undefined
        : async () => (await navigator.storage.getDirectory()).getDirectoryHandle('picked-folder', { create: true });
    });
  }, 300_000);

  afterAll(async () => {
    await env?.close();
  });

  it('Review: the output name has one rule for hint and error, and Start merge is in view at 1440×900', async () => {
    const page = browser.page;
    await openApp(page);
    await useYaml(page, TIES_YAML(models.ids), 3);
    await steps(page).getByRole('button', { name: /Review/ }).click();
    await page.getByRole('cell', { name: 'model.safetensors', exact: true }).waitFor({ timeout: 60_000 });

    // Start merge: inside the 1440×900 viewport without scrolling, and not covered by anything.
    const start = page.getByRole('button', { name: 'Start merge' });
    await expect.poll(() => start.isEnabled()).toBe(true);
    expect(await page.locator('#main').evaluate((m) => m.scrollTop)).toBe(0);
    expect(await page.locator('#main').evaluate((m) => m.scrollHeight > m.clientHeight), 'the Review page is taller than the window').toBe(true);
    const box = (await start.boundingBox())!;
    expect(box.y).toBeGreaterThanOrEqual(0);
    expect(box.y + box.height).toBeLessThanOrEqual(900);
    expect(box.x + box.width).toBeLessThanOrEqual(1440);
    const onTop = await start.evaluate((el) => {
      const r = el.getBoundingClientRect();
      return el.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2));
    });
    expect(onTop, 'Start merge is the element at its own centre').toBe(true);

    // A name the engine refuses: the hint says why, in the engine's words, and nothing says it is fine.
    const name = page.locator('#output-name');
    const hint = page.locator('#output-name-hint');
    await name.fill('my:merge?');
    await expect.poll(() => hint.textContent()).toBe('The output name "my:merge?" contains characters that file names cannot hold (: ?): remove them.');
    expect(await name.getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByText('Fine as a folder name').count()).toBe(0);
    // The engine's plan, asked for with that name, refuses it with the same sentence.
    const planError = page.locator('.result li').filter({ hasText: 'file names cannot hold' });
    await planError.waitFor({ timeout: 30_000 });
    expect(await planError.textContent()).toBe('the output name "my:merge?" contains characters that file names cannot hold (: ?): remove them');
    await expect.poll(() => start.isEnabled()).toBe(false);

    // A valid folder name that is no valid repo name: said as such, and the merge may start.
    await name.fill('my merge (v2)');
    await expect.poll(() => hint.textContent()).toBe('A valid folder name, but not a valid Hub repo name: choose the repo name when pushing.');
    expect(await name.getAttribute('aria-invalid')).toBeNull();
    await expect.poll(() => start.isEnabled(), { timeout: 30_000 }).toBe(true);
    await name.fill('');
  });

  it('Run: no backend badge while downloading; the chosen one once the engine reports it', async () => {
    const page = browser.page;
    // Slow Hub bodies: the downloads take seconds, long enough to look at the Run step.
    hub.faults = { bytesPerSecond: 150_000 };
    try {
      await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
      await page.getByRole('heading', { name: 'Run', exact: true }).waitFor();
      await page.locator('.downloads li', { hasText: 'downloading' }).first().waitFor({ timeout: 60_000 });
      const badge = page.getByTestId('backend-badge');
      expect(await badge.textContent()).toMatch(/^\s*choosing backend…\s*$/);
      expect(await badge.getAttribute('class')).not.toMatch(/\bwarn\b|\baccent\b/);
      expect(await page.getByText('CPU backend').count()).toBe(0);
    } finally {
      hub.faults = {};
    }
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    await steps(page).getByRole('button', { name: /Run/ }).click();
    // Auto on SwiftShader: the CPU backend (a software adapter is slower), now said.
    expect(await page.getByTestId('backend-badge').textContent()).toMatch(/^\s*CPU backend/);
    await steps(page).getByRole('button', { name: /Result/ }).click();
  });

  it('Result: model-card and token links go to the configured Hub', async () => {
    const page = browser.page;
    await page.getByRole('heading', { name: 'Merge Details' }).waitFor({ timeout: 30_000 });
    for (const id of [models.ids.a, models.ids.b, models.ids.base]) {
      const link = page.getByRole('link', { name: id, exact: true }).first();
      expect(await link.getAttribute('href')).toBe(`${hub.url}/${id}`);
    }
    expect(await page.locator('a[href*="huggingface.co"]').count()).toBe(0);
    await page.getByRole('region', { name: 'Confirm the Hub' }).getByRole('button', { name: `Use ${new URL(hub.url).host}` }).click();
    const tokenLink = page.getByRole('link', { name: /Create a write token/ });
    expect(await tokenLink.getAttribute('href')).toMatch(new RegExp(`^${hub.url.replace(/[.]/g, '\\.')}/settings/tokens/new\\?`));
  });

  it('Result: "Save all to a folder" comes first where the browser has it; elsewhere one download per file, explained', async () => {
    const page = browser.page;
    const outputName = (await page.locator('.files h3').first().textContent())!.trim();
    const files = page.locator('.files tbody tr');
    const fileCount = await files.count();
    expect(fileCount).toBeGreaterThanOrEqual(4);
    const save = page.getByRole('button', { name: 'Save all to a folder…' });
    expect(await save.getAttribute('class')).toMatch(/\bprimary\b/);
    expect(await page.getByRole('button', { name: 'Download all' }).count()).toBe(0);
    expect(await page.getByTestId('save-note').textContent()).toMatch(/the browser asks once[\s\S]*may ask you to allow multiple downloads/);
    await save.click();
    await page.getByRole('status').getByText(`Saved ${fileCount} files into ${outputName}/ in the folder picked-folder.`).waitFor({ timeout: 60_000 });
    const saved = await opfsFolder(page, ['picked-folder', outputName]);
    const listed = (await files.locator('td:first-child').allTextContents()).map((t) => t.trim());
    expect(Object.keys(saved).sort()).toEqual(listed.sort());
    expect(Object.values(saved).every((size) => size > 0)).toBe(true);
    const config = await page.evaluate(
      async ({ outputName }) => {
        const dir = await (await (await navigator.storage.getDirectory()).getDirectoryHandle('picked-folder')).getDirectoryHandle(outputName);
        return (await (await dir.getFileHandle('config.json')).getFile()).text();
      },
      { outputName },
    );
    expect(JSON.parse(config).architectures).toEqual(['LlamaForCausalLM']);

    // A browser without the File System Access API: one download per file, and it says so.
    await openApp(page, '&nofolder');
    await steps(page).getByRole('button', { name: /Result/ }).click();
    const all = page.getByRole('button', { name: 'Download all' });
    await all.waitFor();
    expect(await page.getByRole('button', { name: 'Save all to a folder…' }).count()).toBe(0);
    expect(await page.getByTestId('save-note').textContent()).toMatch(/cannot write into a folder you pick[\s\S]*one download per file/);
    const downloads: string[] = [];
    page.on('download', (d) => downloads.push(d.suggestedFilename()));
    await all.click();
    await expect.poll(() => downloads.length, { timeout: 30_000 }).toBe(await page.locator('.files tbody tr').count());
    expect(downloads).toContain('config.json');
  });

  it('Method: the density slider sits at the value in force, placeholders show whole, badges stay inside the list', async () => {
    const page = browser.page;
    await openApp(page);
    const yaml = [
      'models:',
      `  - model: ${models.ids.a}`,
      '    parameters: {weight: 1.0}',
      `  - model: ${models.ids.b}`,
      '    parameters: {weight: 0.7, density: 0.2}',
      'merge_method: ties',
      `base_model: ${models.ids.base}`,
      'dtype: bfloat16',
      '',
    ].join('\n');
    await useYaml(page, yaml, 3);
    await steps(page).getByRole('button', { name: /Method/ }).click();
    const density = (id: string) =>
      page.locator('.model', { has: page.locator('h4', { hasText: id }) }).locator('.param', { has: page.locator('label.name', { hasText: /^density$/ }) });
    // Unset: TIES's default 1 applies, and the slider is at 1, not at the middle of 0…1.
    expect(await density(models.ids.a).locator('input[type=range]').inputValue()).toBe('1');
    expect(await density(models.ids.a).locator('input[type=number]').inputValue()).toBe('');
    expect(await density(models.ids.a).locator('input[type=number]').getAttribute('placeholder')).toBe('1 (default)');
    expect(await density(models.ids.b).locator('input[type=range]').inputValue()).toBe('0.2');
    // A value set for every model is the one in force where a model sets none.
    await page.locator('#yaml-editor').fill(yaml.replace('dtype: bfloat16', 'parameters: {density: 0.6}\ndtype: bfloat16'));
    await expect.poll(() => density(models.ids.a).locator('input[type=range]').inputValue()).toBe('0.6');
    expect(await density(models.ids.a).locator('input[type=number]').getAttribute('placeholder')).toBe('0.6 (every model)');

    // Every placeholder fits its field: the text's width within the content box, less the spin buttons.
    const cut = await page.evaluate(() => {
      const canvas = document.createElement('canvas').getContext('2d')!;
      return [...document.querySelectorAll<HTMLInputElement>('.param input[type=number][placeholder]')].flatMap((input) => {
        const style = getComputedStyle(input);
        canvas.font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
        const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 16;
        const needed = canvas.measureText(input.placeholder).width;
        return needed > room ? [`"${input.placeholder}" needs ${needed.toFixed(0)} px, has ${room.toFixed(0)}`] : [];
      });
    });
    expect(await page.locator('.param input[type=number][placeholder]').count()).toBeGreaterThanOrEqual(4);
    expect(cut).toEqual([]);

    // The method list: every badge inside its option, for long names and at a narrower window too.
    for (const width of [1440, 1024]) {
      await page.setViewportSize({ width, height: 900 });
      const overflow = await page.evaluate(() =>
        [...document.querySelectorAll('[role=radiogroup][aria-label="Merge method"] .option')].flatMap((option) => {
          const box = option.getBoundingClientRect();
          const name = option.querySelector('.names')!.getBoundingClientRect();
          return [...option.querySelectorAll('.badge')].flatMap((badge) => {
            const b = badge.getBoundingClientRect();
            const inside = b.left >= box.left && b.right <= box.right + 0.5 && b.top >= box.top && b.bottom <= box.bottom + 0.5;
            const clear = b.left >= name.right - 0.5 || b.top >= name.bottom - 0.5 || b.bottom <= name.top + 0.5;
            return inside && clear ? [] : [`${option.id}: "${badge.textContent}" ${inside ? 'overlaps the name' : 'overflows'}`];
          });
        }),
      );
      expect(overflow, `at ${width} px`).toEqual([]);
    }
    expect(await page.locator('#method-breadcrumbs_ties .badge', { hasText: 'needs a base' }).isVisible()).toBe(true);
    await page.setViewportSize({ width: 1440, height: 900 });
  });

  it('a WebGPU-only merge on a browser without WebGPU says what to do once', async () => {
    const bare = await launchBrowser({ webgpu: false });
    try {
      const page = bare.page;
      await page.setViewportSize({ width: 1440, height: 900 });
      await page.goto(`${site.url}/`);
      await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
      await settings(page, 'webgpu');
      await page.locator('#yaml-editor').fill(
        ['models:', '  - model: alloy-demo-math', '    parameters: {weight: 0.5}', '  - model: alloy-demo-code', '    parameters: {weight: 0.5}', 'merge_method: linear', 'dtype: bfloat16', ''].join('\n'),
      );
      await page.getByText('valid', { exact: true }).waitFor();
      await steps(page).getByRole('button', { name: /Review/ }).click();
      await page.getByRole('cell', { name: 'model.safetensors', exact: true }).waitFor({ timeout: 60_000 });
      await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
      const notice = page.locator('.notice', { hasText: 'WebGPU is not available' });
      await notice.waitFor({ timeout: 60_000 });
      const text = (await notice.textContent())!.replace(/\s+/g, ' ');
      expect(text, bare.log.join('\n')).toMatch(/WebGPU was asked for, but /);
      expect(text.match(/CPU backend/g)).toHaveLength(1);
      expect(text.match(/Settings/g)).toHaveLength(1);
      expect(await notice.locator('li').count()).toBe(0);
      // The merge stopped before a backend was chosen: no badge claims one.
      expect(await page.getByTestId('backend-badge').textContent()).toMatch(/^\s*no backend chosen\s*$/);
    } finally {
      await bare.close();
    }
  });
});
