// The demo page end to end in a real headless Chromium (SwiftShader's WebGPU): the built site and
// the models served over HTTP from 127.0.0.1, generation in the page's worker, and the canvas
// compared with the Node CLI's PNG for the same model, class and seed (the RNG runs on the GPU,
// so both draw the same noise). Also: previews drawn on the canvas during a run, the download
// button's PNG, the grid for a count, empty fields meaning the defaults, PNDM's step count, the
// adapter name, cancel, the Cache API on a second visit, the stored-models panel (list, Delete,
// Clear all) and the storage warnings a full quota gives, the message shown without WebGPU, the
// LoRA and embedding sections (hidden for the class-conditional model; for sd-tiny a LoRA file
// picked, rescaled, refused when foreign and removed, and an embedding's tokens), sd-tiny with a
// ControlNet (a control image picked in the page, the image compared with the CLI's), and the built
// site under `vite preview` (npm run demo:serve).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import puppeteer, { type Browser, type ElementHandle, type Page } from 'puppeteer-core';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelsMiddleware } from '../../demo/models_server.ts';
import { decodePng, encodePng } from '../../src/io/png.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`skipping the demo e2e test: ${CHROMIUM} is missing (install chromium)`);

// The generation both sides run: class 1 (Trouser), seed 5, 2 DDIM steps, guidance 3, f32
// (SwiftShader has no shader-f16, and f32 on both sides keeps the comparison about the adapters).
const RUN = { cls: 1, seed: 5, steps: 2, guidance: 3 };
// Measured on this machine (SwiftShader in Chromium 150 vs lavapipe in Node): max 0/255, mean 0 —
// the same WGSL, plan and GPU noise give the same bytes. The bound still allows a level or two:
// WGSL leaves FMA contraction and exp/tanh precision to the implementation, so another driver may
// round an f32 differently and flip a pixel that sits on a u8 boundary. A real bug moves far more.
const MAX_DIFF = 2;
const MEAN_DIFF = 0.5;

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json' };

describe.skipIf(!haveChromium)('demo page in headless Chromium', () => {
  let out: string;
  let server: Server;
  let origin: string;
  let browser: Browser;
  let site: string;
  let downloads: string;
  let cliPng: Promise<{ width: number; height: number; pixels: Uint8Array }>;
  const modelRequests: string[] = [];

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'fresco-e2e-'));
    // The CLI's reference image, on lavapipe, while the site builds and the browser starts.
    const png = join(out, 'cli.png');
    cliPng = promisify(execFile)(
      process.execPath,
      cliRunArgs(png),
      { timeout: 120_000 },
    ).then(() => decodePng(new Uint8Array(readFileSync(png))));
    cliPng.catch(() => undefined);

    site = join(out, 'site');
    await build({ configFile: resolve('demo/vite.config.ts'), logLevel: 'warn', build: { outDir: site, emptyOutDir: true } });
    const models = modelsMiddleware(process.cwd());
    server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path.startsWith('/models/')) modelRequests.push(path);
      models(req, res, () => {
        const file = resolve(site, `.${path === '/' ? '/index.html' : decodeURIComponent(path)}`);
        if (!file.startsWith(site + sep) || !existsSync(file) || !statSync(file).isFile()) {
          res.statusCode = 404;
          return void res.end('not found');
        }
        res.setHeader('Content-Type', TYPES[extname(file)] ?? 'application/octet-stream');
        res.end(readFileSync(file));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // http://127.0.0.1 is a secure context, so WebGPU and the Cache API are both available.
    downloads = join(out, 'downloads');
    mkdirSync(downloads);
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--enable-unsafe-webgpu'],
      downloadBehavior: { policy: 'allow', downloadPath: downloads },
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    server?.close();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  async function openDemo(query = '?precision=f32'): Promise<Page> {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error(`page error: ${(e as Error).message}`));
    await page.goto(`${origin}/${query}`);
    return page;
  }

  /** The CLI's run of RUN into `png` (f32, lavapipe). */
  function cliRunArgs(png: string): string[] {
    return ['bin/fresco.js', 'generate', '--class', String(RUN.cls), '--seed', String(RUN.seed), '--steps', String(RUN.steps), '--guidance', String(RUN.guidance), '--scheduler', 'ddim', '--precision', 'f32', '--out', png];
  }

  /** Fills the form with RUN (one image, a preview every step) and generates it. */
  async function generateRun(page: Page): Promise<void> {
    await page.select('#class', String(RUN.cls));
    await setValue(page, 'seed', RUN.seed);
    await setValue(page, 'steps', RUN.steps);
    await setValue(page, 'guidance', RUN.guidance);
    await setValue(page, 'count', 1);
    await setValue(page, 'preview-every', 1);
    await page.select('#scheduler', 'ddim');
    await page.click('#generate');
    const end = await waitState(page, ['done', 'error']);
    expect(end, (await demo(page)).error ?? '').toBe('done');
  }

  /** The canvas's RGBA against the CLI's PNG, within MAX_DIFF / MEAN_DIFF, and not blank. */
  function expectCliImage(data: number[], width: number, height: number, ref: { width: number; height: number; pixels: Uint8Array }, what: string): void {
    expect([width, height]).toEqual([ref.width, ref.height]);
    let max = 0;
    let sum = 0;
    for (let i = 0; i < ref.pixels.length; i++) {
      const diff = Math.abs(data[i]! - ref.pixels[i]!);
      max = Math.max(max, diff);
      sum += diff;
    }
    const mean = sum / ref.pixels.length;
    console.log(`${what} (${ref.width}x${ref.height}): max |diff| ${max}/255, mean ${mean.toFixed(4)}/255`);
    // Not a blank canvas: the image has structure.
    expect(new Set(data).size).toBeGreaterThan(8);
    expect(max).toBeLessThanOrEqual(MAX_DIFF);
    expect(mean).toBeLessThanOrEqual(MEAN_DIFF);
  }

  const state = (page: Page) => page.evaluate(() => document.body.dataset.state);
  async function waitState(page: Page, want: string[], timeout = 120_000): Promise<string> {
    await page.waitForFunction((w: string[]) => w.includes(document.body.dataset.state ?? ''), { timeout, polling: 100 }, want);
    return (await state(page))!;
  }
  async function setValue(page: Page, id: string, value: string | number): Promise<void> {
    await page.$eval(`#${id}`, (el, v) => {
      (el as HTMLInputElement).value = String(v);
    }, value);
  }
  type StorageWarningInfo = { file: string; url: string; bytesNeeded: number | null; usage: number | null; quota: number | null; message: string };
  type DemoState = { previews: number; steps: number; cacheHits: string[]; error: string | null; download: string | null; storageWarnings: StorageWarningInfo[] };
  const demo = (page: Page) => page.evaluate(() => (window as unknown as { frescoDemo: DemoState }).frescoDemo);

  /** The canvas's pixels, and its CSS size over its pixel size (the on-screen scale). */
  const readCanvas = (page: Page) =>
    page.$eval('#image', (c) => {
      const cv = c as HTMLCanvasElement;
      return {
        width: cv.width,
        height: cv.height,
        scale: cv.getBoundingClientRect().width / cv.width,
        scaleY: cv.getBoundingClientRect().height / cv.height,
        rendering: getComputedStyle(cv).imageRendering,
        state: document.body.dataset.state,
        data: Array.from(cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data),
      };
    });

  /** Clicks Download and returns the file the browser saved, decoded. */
  async function download(page: Page): Promise<{ name: string; width: number; height: number; pixels: Uint8Array }> {
    expect(await page.$eval('#download', (el) => (el as HTMLButtonElement).disabled)).toBe(false);
    await page.$eval('#download', () => ((window as unknown as { frescoDemo: DemoState }).frescoDemo.download = null));
    await page.click('#download');
    await page.waitForFunction(() => (window as unknown as { frescoDemo: DemoState }).frescoDemo.download !== null, { timeout: 10_000, polling: 50 });
    const name = (await demo(page)).download!;
    const file = join(downloads, name);
    // Chromium writes to a .crdownload and renames it when complete.
    const deadline = Date.now() + 10_000;
    while (!existsSync(file) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const bytes = new Uint8Array(readFileSync(file));
    rmSync(file);
    return { name, ...decodePng(bytes) };
  }

  /** Every text #status shows from now on. */
  const watchStatus = (page: Page) =>
    page.evaluate(() => {
      const seen: string[] = ((window as unknown as { statuses: string[] }).statuses = []);
      new MutationObserver(() => seen.push(document.getElementById('status')!.textContent ?? '')).observe(document.getElementById('status')!, { childList: true, characterData: true, subtree: true });
    });
  const statuses = (page: Page) => page.evaluate(() => (window as unknown as { statuses: string[] }).statuses);

  /** The stored-models panel's rows, as the page shows them. */
  const storedRows = (page: Page) =>
    page.$$eval('#stored-list li', (lis) =>
      lis.map((li) => {
        const d = (li as HTMLElement).dataset;
        return { base: d.base!, bytes: Number(d.bytes), complete: d.complete === 'true', text: li.textContent ?? '' };
      }),
    );
  /** Waits until the panel lists `n` models (`n` or more with atLeast). */
  const waitRows = (page: Page, n: number, atLeast = false) =>
    page.waitForFunction((k: number, more: boolean) => (more ? document.querySelectorAll('#stored-list li').length >= k : document.querySelectorAll('#stored-list li').length === k), { timeout: 10_000, polling: 50 }, n, atLeast);
  /** Loads the chosen model again in the same page and worker, as picking it in the list does. */
  async function reloadModel(page: Page): Promise<string> {
    await page.$eval('#model', (el) => el.dispatchEvent(new Event('change')));
    expect(await state(page)).toBe('loading');
    return waitState(page, ['ready', 'error']);
  }
  const FASHION_WEIGHTS = ['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors'];
  const weightRequests = () => modelRequests.filter((p) => p.endsWith('.safetensors'));

  it('generates the CLI image for the same class and seed, with previews, and shows the adapter', async () => {
    const page = await openDemo();
    expect(await waitState(page, ['ready', 'error', 'nogpu'])).toBe('ready');
    expect(await page.$eval('#adapter', (el) => el.textContent)).toMatch(/swiftshader/i);
    // LoRAs and embeddings are for text models: hidden and disabled for this class-conditional one.
    for (const id of ['lora-row', 'embedding-row']) {
      expect(await page.$eval(`#${id}`, (el) => [(el as HTMLFieldSetElement).hidden, (el as HTMLFieldSetElement).disabled])).toEqual([true, true]);
    }
    await generateRun(page);
    const d = await demo(page);
    expect(d.steps).toBe(RUN.steps);
    expect(d.previews).toBe(RUN.steps);
    expect(await page.$eval('#total-ms', (el) => el.textContent)).toMatch(/\d+\.\d+ s/);
    expect(await page.$eval('#step-ms', (el) => el.textContent)).toMatch(/step 2 of 2\b/);

    const canvas = await readCanvas(page);
    // A whole-number upscale, pixelated: a 32 px image is not shown at 32 px nor blurred.
    expect(canvas.scale).toBeGreaterThan(1);
    expect(canvas.scale).toBe(Math.round(canvas.scale));
    expect(canvas.rendering).toBe('pixelated');
    // The download is the canvas's image, as a PNG with a name that says what it is.
    const saved = await download(page);
    expect(saved.name).toBe(`fresco-fashion-ldm-trouser-seed${RUN.seed}.png`);
    expect([saved.width, saved.height]).toEqual([canvas.width, canvas.height]);
    expect(Array.from(saved.pixels)).toEqual(canvas.data);
    expectCliImage(canvas.data, canvas.width, canvas.height, await cliPng, 'demo canvas vs CLI PNG');
    await page.close();
  }, 240_000);

  it('quantizes the U-Net at load with ?weights=q8, draws what the CLI draws with --weights q8, and names a bad value', async () => {
    const png = join(out, 'cli-q8.png');
    const cli = promisify(execFile)(process.execPath, [...cliRunArgs(png), '--weights', 'q8'], { timeout: 120_000 });
    const page = await openDemo('?precision=f32&weights=q8');
    expect(await waitState(page, ['ready', 'error', 'nogpu'])).toBe('ready');
    expect(await page.$eval('#precision', (el) => el.textContent)).toMatch(/q8/);
    await generateRun(page);
    const canvas = await readCanvas(page);
    await cli;
    expectCliImage(canvas.data, canvas.width, canvas.height, decodePng(new Uint8Array(readFileSync(png))), 'demo q8 canvas vs CLI --weights q8 PNG');
    await page.close();

    const bad = await openDemo('?precision=f32&weights=q5');
    expect(await waitState(bad, ['ready', 'error', 'nogpu'])).toBe('error');
    expect(await bad.$eval('#status', (el) => el.textContent)).toMatch(/weights must be one of q8, q4, float, got "q5"/);
    await bad.close();
  }, 240_000);

  it('cancels within a step, and a second visit reads the model from the Cache API', async () => {
    const before = modelRequests.filter((p) => p.endsWith('.safetensors')).length;
    expect(before).toBeGreaterThan(0);
    const page = await openDemo();
    expect(await waitState(page, ['ready', 'error'])).toBe('ready');
    const d0 = await demo(page);
    expect(d0.cacheHits).toEqual(expect.arrayContaining(['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors']));
    expect(modelRequests.filter((p) => p.endsWith('.safetensors')).length).toBe(before);

    await setValue(page, 'steps', 20);
    await setValue(page, 'preview-every', 1);
    expect(await page.$eval('#download', (el) => (el as HTMLButtonElement).disabled)).toBe(true);
    await page.click('#generate');
    await page.waitForFunction(() => (window as unknown as { frescoDemo: { previews: number } }).frescoDemo.previews >= 1, { timeout: 120_000, polling: 50 });
    // Mid-run, the image canvas already shows the preview: opaque, with structure, not the grey background.
    const mid = await readCanvas(page);
    expect(mid.state).toBe('running');
    expect(mid.data.filter((_, i) => i % 4 === 3).every((a) => a === 255)).toBe(true);
    expect(new Set(mid.data).size).toBeGreaterThan(8);
    expect(await page.$eval('#caption', (el) => el.textContent)).toMatch(/^Preview at step \d+ of 20/);
    await page.click('#cancel');
    const atCancel = (await demo(page)).steps;
    expect(await waitState(page, ['cancelled', 'done', 'error'])).toBe('cancelled');
    // The loop checks the signal before each step: at most the step in flight finishes.
    expect((await demo(page)).steps).toBeLessThanOrEqual(atCancel + 1);
    // A cancelled run leaves a preview, not an image to save.
    expect(await page.$eval('#download', (el) => (el as HTMLButtonElement).disabled)).toBe(true);
    await page.close();
  }, 240_000);

  it('lists the stored model in the panel, deletes it, and the next load fetches it again with per-file and overall progress', async () => {
    const page = await openDemo();
    expect(await waitState(page, ['ready', 'error'])).toBe('ready');
    // A second visit: the weights came from storage, and the page says so.
    expect(await page.$eval('#status', (el) => el.textContent)).toMatch(/^Ready: ([\d.]+) MB read \(\1 MB from storage\)\.$/);
    // persist() was asked before the load (in the page: a worker has none), and its answer shown.
    await page.waitForFunction(() => /^storage: persistent$|^storage may be evicted/.test(document.getElementById('persist')!.textContent ?? ''), { timeout: 10_000, polling: 50 });
    expect(await page.$eval('#weight-bytes', (el) => el.textContent)).toMatch(/^[\d.]+ MB$/);

    await waitRows(page, 1);
    const [row] = await storedRows(page);
    const fashion = `${origin}/models/fashion-ldm/`;
    expect(row!.base).toBe(fashion);
    expect(row!.complete).toBe(true);
    const weightBytes = FASHION_WEIGHTS.reduce((n, f) => n + statSync(join('weights/fashion-ldm', f)).size, 0);
    expect(row!.bytes).toBeGreaterThanOrEqual(weightBytes);
    expect(row!.text).toMatch(/^models\/fashion-ldm\/[\d.]+ MB\d+ filescomplete/);

    await page.click('#stored-list li button.delete');
    await waitRows(page, 0);
    expect(await page.$eval('#stored-note', (el) => el.textContent)).toMatch(/^No models stored/);
    // Gone from the Cache API itself, not only from the list.
    expect(await page.evaluate(async () => (await (await caches.open('fresco-models-v2')).keys()).length)).toBe(0);

    const before = weightRequests().length;
    await watchStatus(page);
    expect(await reloadModel(page)).toBe('ready');
    const fetched = weightRequests().slice(before);
    for (const f of FASHION_WEIGHTS) expect(fetched).toContain(`/models/fashion-ldm/${f}`);
    // (Config files are read twice in a load, the second time from storage; weights once.)
    expect((await demo(page)).cacheHits.filter((f) => f.endsWith('.safetensors'))).toEqual([]);
    // Progress names the file and its bytes, then the sum over the files seen so far.
    const shown = await statuses(page);
    const unet = shown.filter((t) => t.startsWith('Loading unet/diffusion_pytorch_model.safetensors:'));
    expect(unet.length, shown.join('\n')).toBeGreaterThan(0);
    for (const t of unet) expect(t).toMatch(/^Loading unet\/diffusion_pytorch_model\.safetensors: [\d.]+ k?M?B of [\d.]+ MB; all files: [\d.]+ k?M?B of [\d.]+ MB$/);
    expect(shown.at(-1)).toMatch(/^Ready: [\d.]+ MB read( \([\d.]+ k?B from storage\))?\.$/);
    // Stored again by that load, and listed again.
    await page.waitForFunction(() => document.querySelector('#stored-list li[data-complete="true"]') !== null, { timeout: 10_000, polling: 50 });
    expect((await storedRows(page)).map((r) => r.base)).toEqual([fashion]);
    await page.close();
  }, 120_000);

  it('shows each file a full quota could not store, with its size and the usage, and Clear all empties the list', async () => {
    const page = await openDemo();
    expect(await waitState(page, ['ready', 'error'])).toBe('ready');
    await waitRows(page, 1, true);
    await page.click('#stored-clear');
    await waitRows(page, 0);
    // A 2 MB quota for this origin (the page and its worker): the 27 MB U-Net cannot be stored.
    // Chromium enforces it on the Cache API's put, while navigator.storage.estimate() still
    // reports the disk's quota, so the library's own check passes and the write itself fails.
    const QUOTA = 2_000_000;
    const cdp = await page.createCDPSession();
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: QUOTA });
    try {
      expect(await reloadModel(page)).toBe('ready');
      const warnings = (await demo(page)).storageWarnings;
      const unet = warnings.find((w) => w.file === FASHION_WEIGHTS[0]);
      expect(unet, JSON.stringify(warnings)).toBeDefined();
      expect(unet!.bytesNeeded).toBe(statSync(join('weights/fashion-ldm', FASHION_WEIGHTS[0]!)).size);
      expect(unet!.usage).not.toBeNull();
      expect(unet!.quota).toBeGreaterThan(0);
      expect(unet!.message).toMatch(/QuotaExceededError/);
      // One line per file (a config read twice in the load is warned about twice).
      const shown = await page.$$eval('#storage-warnings li', (lis) => lis.map((li) => li.firstChild?.textContent ?? ''));
      expect(shown.length).toBe(new Set(warnings.map((w) => w.url)).size);
      expect(shown).toContainEqual(expect.stringMatching(/^Could not store unet\/diffusion_pytorch_model\.safetensors: needs 27\.3 MB, [\d.]+ [kMG]?B of [\d.]+ [kMG]?B used\./));
      expect(await page.$eval('#storage-warnings', (el) => (el as HTMLElement).hidden)).toBe(false);
      expect(await page.$eval('#status', (el) => el.textContent)).toMatch(/\d+ files? could not be stored/);
    } finally {
      await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    }
    await page.close();
  }, 120_000);

  it('lays out a count of 4 as a 2x2 grid at a whole-number upscale, downloads it, and counts PNDM steps as the user does', async () => {
    const page = await openDemo();
    expect(await waitState(page, ['ready', 'error'])).toBe('ready');
    await setValue(page, 'count', 4);
    await setValue(page, 'steps', 2);
    await setValue(page, 'preview-every', 1);
    await page.select('#scheduler', 'pndm');
    await watchStatus(page);
    await page.click('#generate');
    const end = await waitState(page, ['done', 'error']);
    expect(end, (await demo(page)).error ?? '').toBe('done');
    // PNDM makes steps + 1 U-Net calls, but the library reports the 2 steps the user asked for.
    expect((await demo(page)).steps).toBe(2);
    const shown = (await statuses(page)).filter((t) => t.startsWith('Step'));
    expect(shown.length).toBeGreaterThan(0);
    for (const t of shown) expect(t).toMatch(/^Step [12] of 2…$/);
    expect(await page.$eval('#step-ms', (el) => el.textContent)).toMatch(/step 2 of 2\b/);
    const canvas = await readCanvas(page);
    expect([canvas.width, canvas.height]).toEqual([64, 64]);
    expect(canvas.scale).toBeGreaterThanOrEqual(2);
    expect(canvas.scale).toBe(Math.round(canvas.scale));
    expect(canvas.scaleY).toBe(canvas.scale);
    // Four different images, one per cell (the seed's noise differs per image).
    const cell = (cx: number, cy: number) => Array.from({ length: 32 }, (_, y) => canvas.data.slice(((cy * 32 + y) * 64 + cx * 32) * 4, ((cy * 32 + y) * 64 + cx * 32 + 32) * 4)).flat().join();
    expect(new Set([cell(0, 0), cell(1, 0), cell(0, 1), cell(1, 1)]).size).toBe(4);
    const saved = await download(page);
    expect(saved.name).toMatch(/^fresco-fashion-ldm-t-shirt-top-seed\d+-x4\.png$/);
    expect([saved.width, saved.height]).toEqual([64, 64]);
    expect(Array.from(saved.pixels)).toEqual(canvas.data);
    await page.close();
  }, 240_000);

  it('takes empty numeric fields as the defaults (model steps and guidance, a random seed), never 0', async () => {
    const page = await openDemo();
    expect(await waitState(page, ['ready', 'error'])).toBe('ready');
    expect(await page.$eval('#steps', (el) => (el as HTMLInputElement).placeholder)).toBe('25');
    for (const id of ['steps', 'guidance', 'seed', 'count', 'preview-every']) await setValue(page, id, '');
    await page.click('#generate');
    // fashion-ldm's card says 25 steps; an empty preview interval keeps the page's every step. Two
    // steps show the run is under way with those settings; the rest would only cost time.
    await page.waitForFunction(() => (window as unknown as { frescoDemo: DemoState }).frescoDemo.previews >= 2 || document.body.dataset.state === 'error', { timeout: 120_000, polling: 50 });
    expect((await demo(page)).error).toBeNull();
    expect(await page.$eval('#status', (el) => el.textContent)).toMatch(/^Step \d+ of 25…$/);
    const canvas = await readCanvas(page);
    expect([canvas.width, canvas.height]).toEqual([32, 32]);
    expect(new Set(canvas.data).size).toBeGreaterThan(8);
    await page.click('#cancel');
    expect(await waitState(page, ['cancelled', 'done', 'error'])).toBe('cancelled');
    await page.close();
  }, 240_000);

  for (const model of ['sd-tiny', 'sdxl-tiny']) it(`shows a prompt box for a text model (${model}, a pipeline folder) and generates from a prompt`, async () => {
    const page = await openDemo(`?model=${model}&precision=f32`);
    expect(await waitState(page, ['ready', 'error'])).toBe('ready');
    expect(await page.$eval('#prompt-row', (el) => (el as HTMLElement).hidden)).toBe(false);
    expect(await page.$eval('#class-row', (el) => (el as HTMLElement).hidden)).toBe(true);
    await page.$eval('#prompt', (el) => ((el as HTMLTextAreaElement).value = 'a red sneaker'));
    await setValue(page, 'steps', 2);
    await setValue(page, 'preview-every', 1);
    await page.click('#generate');
    const end = await waitState(page, ['done', 'error']);
    expect(end, (await demo(page)).error ?? '').toBe('done');
    expect((await demo(page)).previews).toBeGreaterThan(0);
    await page.close();
  }, 120_000);

  it('loads a LoRA picked in the page into sd-tiny, rescales and removes it, shows a foreign file\'s error, and adds an embedding\'s tokens', async () => {
    // A kohya LoRA of rank 2 for one attention projection of sd-tiny (32 channels), and one for
    // another architecture's module.
    const values = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1) * 0.05);
    const kohya = (module: string) =>
      writeSafetensors({
        [`lora_unet_${module}.lora_down.weight`]: { dtype: 'F32', shape: [2, 32], data: values(64) },
        [`lora_unet_${module}.lora_up.weight`]: { dtype: 'F32', shape: [32, 2], data: values(64) },
        [`lora_unet_${module}.alpha`]: { dtype: 'F32', shape: [], data: Float32Array.of(2) },
      });
    const files = join(out, 'adapters');
    mkdirSync(files, { recursive: true });
    const lora = join(files, 'tiny-style.safetensors');
    const foreign = join(files, 'flux-style.safetensors');
    // A1111's form, with no token of its own: its token is the file's name.
    const embedding = join(files, 'fresco-thing.safetensors');
    writeFileSync(lora, kohya('down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q'));
    writeFileSync(foreign, kohya('double_blocks_0_img_attn_qkv'));
    writeFileSync(embedding, writeSafetensors({ emb_params: { dtype: 'F32', shape: [2, 64], data: values(128) } }));

    const page = await openDemo('?model=sd-tiny&precision=f32');
    expect(await waitState(page, ['ready', 'error'])).toBe('ready');
    expect(await page.$eval('#lora-row', (el) => [(el as HTMLFieldSetElement).hidden, (el as HTMLFieldSetElement).disabled])).toEqual([false, false]);
    const loraRows = () => page.$$eval('#lora-list li', (lis) => lis.map((li) => ({ name: (li as HTMLElement).dataset.name, scale: Number((li as HTMLElement).dataset.scale), text: li.firstElementChild!.textContent })));
    /** Picks a file in a file input, as a user does through the browser's file chooser. */
    const pick = async (id: string, file: string) => ((await page.$(`#${id}`)) as ElementHandle<HTMLInputElement>).uploadFile(file);
    const idle = (note: string) => page.waitForFunction((id: string) => document.getElementById(id)!.textContent === '', { timeout: 60_000, polling: 50 }, note);

    await setValue(page, 'lora-scale', 0.5);
    await pick('lora-file', lora);
    await page.waitForFunction(() => document.querySelectorAll('#lora-list li').length === 1 || !document.getElementById('lora-error')!.hidden, { timeout: 60_000, polling: 50 });
    expect(await page.$eval('#lora-error', (el) => el.textContent)).toBe('');
    expect(await loraRows()).toEqual([{ name: 'tiny-style', scale: 0.5, text: 'tiny-style 1 unet layer' }]);

    // A new scale in the row's field is merged (debounced), without reading the file again.
    await page.$eval('#lora-list li input.scale', (el) => {
      (el as HTMLInputElement).value = '0.8';
      el.dispatchEvent(new Event('input', { bubbles: true }));
    });
    await page.waitForFunction(() => (document.querySelector('#lora-list li') as HTMLElement | null)?.dataset.scale === '0.8', { timeout: 60_000, polling: 50 });
    expect(await page.$eval('#lora-list li input.scale-range', (el) => (el as HTMLInputElement).value)).toBe('0.8');

    // Another architecture's LoRA: the library's error in the page, and the list as it was.
    await pick('lora-file', foreign);
    await page.waitForFunction(() => !document.getElementById('lora-error')!.hidden, { timeout: 60_000, polling: 50 });
    expect(await page.$eval('#lora-error', (el) => el.textContent)).toMatch(/^Could not load flux-style: LoraError: .*none of its 1 LoRA layers names a module of this model \(first: unet: double_blocks_0_img_attn_qkv\); is it for another architecture\?$/);
    await idle('lora-note');
    expect((await loraRows()).map((r) => r.name)).toEqual(['tiny-style']);

    await pick('embedding-file', embedding);
    await page.waitForFunction(() => document.querySelectorAll('#embedding-list li').length === 1 || !document.getElementById('embedding-error')!.hidden, { timeout: 60_000, polling: 50 });
    expect(await page.$eval('#embedding-error', (el) => el.textContent)).toBe('');
    expect(await page.$eval('#embedding-list li', (el) => el.textContent)).toBe('fresco-thing.safetensors2 tokens: fresco-thing, fresco-thing_1');

    // The model draws with both: the token in the prompt, the LoRA in the U-Net.
    await page.$eval('#prompt', (el) => ((el as HTMLTextAreaElement).value = 'a fresco-thing sneaker'));
    await setValue(page, 'steps', 2);
    await page.click('#generate');
    const end = await waitState(page, ['done', 'error']);
    expect(end, (await demo(page)).error ?? '').toBe('done');

    await page.click('#lora-list li button.remove');
    await page.waitForFunction(() => document.querySelectorAll('#lora-list li').length === 0, { timeout: 60_000, polling: 50 });
    await idle('lora-note');
    expect(await page.$eval('#lora-error', (el) => (el as HTMLElement).hidden)).toBe(true);
    await page.close();
  }, 120_000);

  it('loads sd-tiny with a ControlNet, asks for a control image, and draws what the CLI draws with it', async () => {
    // A 20x12 control image (white strokes on black): without a size, the size generated.
    const [w, h] = [20, 12];
    const px = new Uint8Array(w * h * 3).map((_, i) => (((i / 3) | 0) % 7 === 0 || ((i / 3 / w) | 0) === 5 ? 255 : 0));
    const file = join(out, 'control-edges.png');
    writeFileSync(file, encodePng(w, h, 3, px));
    const cli = join(out, 'cli-controlnet.png');
    const args = ['--prompt', 'a red sneaker', '--seed', '3', '--steps', '2', '--guidance', '5', '--scheduler', 'ddim', '--control-scale', '0.9'];
    const cliRun = promisify(execFile)(process.execPath, ['bin/fresco.js', 'generate', '--model', 'tests/fixtures/sd-tiny', '--controlnet', 'tests/fixtures/controlnet-tiny', '--control-image', file, ...args, '--precision', 'f32', '--out', cli], { timeout: 120_000 });

    const page = await openDemo('?model=sd-tiny%2Bcontrolnet-tiny&precision=f32');
    expect(await waitState(page, ['ready', 'error'])).toBe('ready');
    expect(await page.$eval('#control-row', (el) => [(el as HTMLFieldSetElement).hidden, (el as HTMLFieldSetElement).disabled])).toEqual([false, false]);
    await page.$eval('#prompt', (el) => ((el as HTMLTextAreaElement).value = 'a red sneaker'));
    await setValue(page, 'seed', 3);
    await setValue(page, 'steps', 2);
    await setValue(page, 'guidance', 5);
    await setValue(page, 'count', 1);
    await page.select('#scheduler', 'ddim');
    await setValue(page, 'control-scale', 0.9);
    // No control image yet: the page asks for one and stays ready.
    await page.click('#generate');
    expect(await page.$eval('#status', (el) => el.textContent)).toBe('This model has a ControlNet: pick a control image first.');
    expect(await state(page)).toBe('ready');
    await ((await page.$('#control-file')) as ElementHandle<HTMLInputElement>).uploadFile(file);
    await page.waitForFunction(() => (window as unknown as { frescoDemo: { controlImage: unknown } }).frescoDemo.controlImage !== null, { timeout: 10_000, polling: 50 });
    expect(await page.$eval('#control-note', (el) => el.textContent)).toBe('control-edges.png: 20×12 px');
    await page.click('#generate');
    const end = await waitState(page, ['done', 'error']);
    expect(end, (await demo(page)).error ?? '').toBe('done');
    const canvas = await readCanvas(page);
    expect([canvas.width, canvas.height]).toEqual([w, h]);
    expect(await page.$eval('#caption', (el) => el.textContent)).toMatch(/^20×12 px/);
    await cliRun;
    const ref = decodePng(new Uint8Array(readFileSync(cli)));
    expect([ref.width, ref.height]).toEqual([w, h]);
    let max = 0;
    let sum = 0;
    for (let p = 0; p < w * h; p++) {
      for (let c = 0; c < 3; c++) {
        const d = Math.abs(canvas.data[4 * p + c]! - ref.pixels[4 * p + c]!);
        max = Math.max(max, d);
        sum += d;
      }
    }
    console.log(`ControlNet: demo canvas vs CLI PNG: max ${max}/255, mean ${(sum / (w * h * 3)).toFixed(3)}`);
    expect(max).toBeLessThanOrEqual(MAX_DIFF);
    expect(sum / (w * h * 3)).toBeLessThanOrEqual(MEAN_DIFF);
    await page.close();
  }, 180_000);

  it('serves the built site with its models under vite preview (npm run demo:serve)', async () => {
    const server: PreviewServer = await preview({ configFile: resolve('demo/vite.config.ts'), logLevel: 'warn', build: { outDir: site }, preview: { port: 0, strictPort: true, open: false } });
    try {
      const url = server.resolvedUrls!.local[0]!;
      const model = await fetch(new URL('models/fashion-ldm/unet/config.json', url));
      expect(model.status).toBe(200);
      const page = await browser.newPage();
      await page.goto(`${url}?precision=f32`);
      expect(await waitState(page, ['ready', 'error', 'nogpu'])).toBe('ready');
      await page.close();
    } finally {
      await server.close();
    }
  }, 120_000);

  it('says so clearly when WebGPU is missing', async () => {
    const page = await browser.newPage();
    await page.evaluateOnNewDocument(() => {
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined });
    });
    await page.goto(`${origin}/`);
    expect(await waitState(page, ['nogpu', 'ready', 'loading'], 30_000)).toBe('nogpu');
    expect(await page.$eval('#nogpu', (el) => (el as HTMLElement).hidden)).toBe(false);
    expect(await page.$eval('#nogpu', (el) => el.textContent)).toMatch(/WebGPU is not available.*navigator\.gpu/);
    expect(await page.$eval('#generate', (el) => (el as HTMLButtonElement).disabled)).toBe(true);
    await page.close();
  }, 60_000);
});
