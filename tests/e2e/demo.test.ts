// The demo page end to end in a real headless Chromium (SwiftShader's WebGPU): the built site and
// the models served over HTTP from 127.0.0.1, generation in the page's worker, and the canvas
// compared with the Node CLI's PNG for the same model, class and seed (the RNG runs on the GPU,
// so both draw the same noise). Also: previews, the adapter name, cancel, the Cache API on a
// second visit, and the message shown without WebGPU.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelsMiddleware } from '../../demo/models_server.ts';
import { decodePng } from '../../src/io/png.ts';

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
  let cliPng: Promise<{ width: number; height: number; pixels: Uint8Array }>;
  const modelRequests: string[] = [];

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'fresco-e2e-'));
    // The CLI's reference image, on lavapipe, while the site builds and the browser starts.
    const png = join(out, 'cli.png');
    cliPng = promisify(execFile)(
      process.execPath,
      ['bin/fresco.js', 'generate', '--class', String(RUN.cls), '--seed', String(RUN.seed), '--steps', String(RUN.steps), '--guidance', String(RUN.guidance), '--scheduler', 'ddim', '--precision', 'f32', '--out', png],
      { timeout: 120_000 },
    ).then(() => decodePng(new Uint8Array(readFileSync(png))));
    cliPng.catch(() => undefined);

    const site = join(out, 'site');
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
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--enable-unsafe-webgpu'] });
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
  const demo = (page: Page) => page.evaluate(() => (window as unknown as { frescoDemo: { previews: number; steps: number; cacheHits: string[]; error: string | null } }).frescoDemo);

  it('generates the CLI image for the same class and seed, with previews, and shows the adapter', async () => {
    const page = await openDemo();
    expect(await waitState(page, ['ready', 'error', 'nogpu'])).toBe('ready');
    expect(await page.$eval('#adapter', (el) => el.textContent)).toMatch(/swiftshader/i);
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
    const d = await demo(page);
    expect(d.steps).toBe(RUN.steps);
    expect(d.previews).toBe(RUN.steps);
    expect(await page.$eval('#total-ms', (el) => el.textContent)).toMatch(/\d+\.\d+ s/);

    const canvas = await page.$eval('#image', (c) => {
      const cv = c as HTMLCanvasElement;
      return { width: cv.width, height: cv.height, data: Array.from(cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data) };
    });
    const ref = await cliPng;
    expect([canvas.width, canvas.height]).toEqual([ref.width, ref.height]);
    let max = 0;
    let sum = 0;
    for (let i = 0; i < ref.pixels.length; i++) {
      const diff = Math.abs(canvas.data[i]! - ref.pixels[i]!);
      max = Math.max(max, diff);
      sum += diff;
    }
    const mean = sum / ref.pixels.length;
    console.log(`demo canvas vs CLI PNG (${ref.width}x${ref.height}): max |diff| ${max}/255, mean ${mean.toFixed(4)}/255`);
    // Not a blank canvas: the image has structure.
    expect(new Set(canvas.data).size).toBeGreaterThan(8);
    expect(max).toBeLessThanOrEqual(MAX_DIFF);
    expect(mean).toBeLessThanOrEqual(MEAN_DIFF);
    await page.close();
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
    await setValue(page, 'preview-every', 0);
    await page.click('#generate');
    await page.waitForFunction(() => (window as unknown as { frescoDemo: { steps: number } }).frescoDemo.steps >= 1, { timeout: 120_000, polling: 50 });
    await page.click('#cancel');
    const atCancel = (await demo(page)).steps;
    expect(await waitState(page, ['cancelled', 'done', 'error'])).toBe('cancelled');
    // The loop checks the signal before each step: at most the step in flight finishes.
    expect((await demo(page)).steps).toBeLessThanOrEqual(atCancel + 1);
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
