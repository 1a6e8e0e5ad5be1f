// What the bench pages (main.ts, ab.ts) hand back to the Node driver (bench/ort.ts): the page
// publishes its result or failure on window, and the driver waits for either.
import type { Page } from 'puppeteer-core';

export interface BatchResult {
  batch: number;
  labels: number[];
  ortMs: number[];
  frescoMs: number[];
  ortUnetStepMs: number;
  frescoUnetStepMs: number;
  ratio: number;
  maxAbsDiff: number;
  maxRelDiff: number;
  maxAbsRef: number;
}

/** Page side: window.__result once `run` resolves, window.__error (also logged) if it fails. */
export function publish(run: Promise<unknown>, log: (msg: string) => void = () => {}): void {
  const w = window as unknown as { __result?: unknown; __error?: string };
  run.then(
    (r) => {
      w.__result = r;
    },
    (e: Error) => {
      w.__error = `${e.name}: ${e.message}\n${e.stack ?? ''}`;
      log(w.__error);
    },
  );
}

/** Driver side: opens `url` in `tab`, waits (no timeout: CPU adapters are slow) and returns the result. */
export async function pageResult<T>(tab: Page, url: string): Promise<T> {
  await tab.goto(url);
  await tab.waitForFunction('window.__result || window.__error', { timeout: 0, polling: 1000 });
  const error = (await tab.evaluate('window.__error')) as string | undefined;
  if (error) throw new Error(`the page failed: ${error}`);
  return (await tab.evaluate('window.__result')) as T;
}
