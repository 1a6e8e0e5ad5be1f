// The step row is defined once (StepRow) and the fused step's WGSL gets its slot numbers from it;
// these tests read the shader the GPU would compile and check it sees the same numbers. GPU-free.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Const, LiteralExpr, WgslParser } from 'wgsl_reflect/wgsl_reflect.module.js';
import { generateWgsl } from '../../src/gpu/runtime.ts';
import { generatedShaderSources } from '../../src/kernels/generated_shaders.ts';
import { shaderSources } from '../../src/kernels/shaders.gen.ts';
import { EPS_HISTORY_SLOTS, packPlmsRow, packStepRow, PLMS_ROW_LENGTH, STEP_ROW_LENGTH, StepRow, wgslSlotName, type StepRowSlot } from '../../src/kernels/step_row.ts';

const slots = Object.keys(StepRow) as StepRowSlot[];

/** Module-scope `const NAME = <literal>;` values of a WGSL module, as wgsl_reflect parses them. */
function moduleConsts(code: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const node of new WgslParser().parse(code)) {
    if (node instanceof Const && node.value instanceof LiteralExpr) out.set(node.name, node.value.scalarValue);
  }
  return out;
}

// Every variant that reads the row, so no #if can hide a slot.
const variants = [
  { CFG: true, NOISE: true, NEXT: true, EPS_OUT: true, PREV_X0: true, EPS_HISTORY: true },
  { CFG: true, X0_ONLY: true },
  { NOISE: true, PREV_X0: true, THRESHOLD: true },
];

describe('step row layout', () => {
  it('gives every slot its own index, the plain slots first', () => {
    expect(slots.map((s) => StepRow[s]).sort((a, b) => a - b)).toEqual([...Array(PLMS_ROW_LENGTH).keys()]);
    for (const s of slots) expect(StepRow[s] < STEP_ROW_LENGTH, s).toBe(slots.indexOf(s) < slots.indexOf('wEps'));
  });

  it('keeps the history weights consecutive (the shader reads wHist0 + k)', () => {
    for (let k = 0; k < EPS_HISTORY_SLOTS; k++) expect(StepRow[`wHist${k}` as StepRowSlot]).toBe(StepRow.wHist0 + k);
  });

  it('packs rows of the lengths it declares', () => {
    const k = { a0: 1, a1: 2, clip: null, b0: 0, b1: 1, b2: 0, c0: 0, c1: 0, c2: 1, c3: 0, nextScale: 1 };
    expect(packStepRow(5, 1, k)).toHaveLength(STEP_ROW_LENGTH);
    const h = { wEps: 1, wHist: [2, 3, 4] as [number, number, number], histWrite: 1, fromStored: true, storeSample: false };
    const row = packPlmsRow(5, 1, k, h);
    expect(row).toHaveLength(PLMS_ROW_LENGTH);
    expect([row[StepRow.wHist0], row[StepRow.wHist1], row[StepRow.wHist2]]).toEqual([2, 3, 4]);
  });
});

describe('scheduler_step.wgsl sees the same slots', () => {
  it('has one generated constant per slot with the TypeScript index', () => {
    for (const params of variants) {
      const consts = moduleConsts(generateWgsl({ shader: 'scheduler_step', params }));
      for (const s of slots) expect(consts.get(wgslSlotName(s)), `${s} with ${JSON.stringify(params)}`).toBe(StepRow[s]);
      expect(consts.get('EPS_HISTORY_SLOTS')).toBe(EPS_HISTORY_SLOTS);
    }
  });

  it('indexes the row only through the generated constants', () => {
    const names = new Set(slots.map(wgslSlotName));
    const source = readFileSync('shaders/scheduler_step.wgsl', 'utf8');
    const reads = [...source.matchAll(/\brow\[([^\]]+)\]/g)].map((m) => m[1]!.split(/\s*\+\s*/)[0]!.trim());
    expect(reads.length).toBeGreaterThan(10);
    for (const r of reads) expect(names.has(r), `row[${r}]`).toBe(true);
    // The template itself restates no slot number.
    expect(source).not.toMatch(/const\s+ROW_/);
  });

  it('names slots distinctly in WGSL', () => {
    expect(new Set(slots.map(wgslSlotName)).size).toBe(slots.length);
    expect(wgslSlotName('clipRange')).toBe('ROW_CLIP_RANGE');
    expect(wgslSlotName('x0Inf')).toBe('ROW_X0_INF');
  });

  it('keeps generated includes apart from shaders/*.wgsl names', () => {
    for (const name of Object.keys(generatedShaderSources)) expect(shaderSources[name], name).toBeUndefined();
  });
});
