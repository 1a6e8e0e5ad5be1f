// Scheduler trace folders in the fixtures' format (scheduler_config.json, case.json,
// trace.safetensors), written from float64 references for configs diffusers' fixtures do not cover.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { writeSafetensors, type DType } from '../../src/io/safetensors.ts';

/** Deterministic standard-normal-ish values (Box–Muller over a small LCG). */
export function gauss(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

export type TraceTensors = Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView }>;

const dirs: string[] = [];
afterAll(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Writes a trace folder (removed after the test file) and returns its path. */
export function writeTraceFolder(name: string, config: Record<string, unknown>, steps: number, tensors: TraceTensors, stepKwargs: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), `fresco-${name}-`));
  dirs.push(dir);
  writeFileSync(join(dir, 'scheduler_config.json'), JSON.stringify(config));
  writeFileSync(join(dir, 'case.json'), JSON.stringify({ class: config._class_name, steps, step_kwargs: stepKwargs }));
  writeFileSync(join(dir, 'trace.safetensors'), writeSafetensors(tensors));
  return dir;
}
