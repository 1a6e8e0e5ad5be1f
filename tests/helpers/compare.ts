// Reference comparison in the llm.c style: |got - ref| <= atol + rtol·|ref| per element, NaN/Inf
// in the output always fail, and the first few mismatches are printed.
export interface Comparison {
  ok: boolean;
  maxAbsErr: number;
  maxAbsRef: number;
  /** maxAbsErr / maxAbsRef */
  ratio: number;
  mismatches: number;
  nonFinite: number;
  report: string;
}

export function compare(got: ArrayLike<number>, ref: ArrayLike<number>, atol: number, rtol: number): Comparison {
  if (got.length !== ref.length) {
    return { ok: false, maxAbsErr: Infinity, maxAbsRef: 0, ratio: Infinity, mismatches: -1, nonFinite: 0, report: `length ${got.length} != ref length ${ref.length}` };
  }
  let maxAbsErr = 0;
  let maxAbsRef = 0;
  let mismatches = 0;
  let nonFinite = 0;
  const lines: string[] = [];
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const x = got[i]!;
    if (!Number.isFinite(r)) continue;
    maxAbsRef = Math.max(maxAbsRef, Math.abs(r));
    if (!Number.isFinite(x)) {
      nonFinite++;
      if (lines.length < 5) lines.push(`  [${i}] got ${x} ref ${r}`);
      continue;
    }
    const err = Math.abs(x - r);
    maxAbsErr = Math.max(maxAbsErr, err);
    if (err > atol + rtol * Math.abs(r)) {
      mismatches++;
      if (lines.length < 5) lines.push(`  [${i}] got ${x} ref ${r} err ${err.toExponential(3)}`);
    }
  }
  const ok = mismatches === 0 && nonFinite === 0;
  const ratio = maxAbsRef > 0 ? maxAbsErr / maxAbsRef : maxAbsErr;
  const head = `max|err| ${maxAbsErr.toExponential(3)} max|ref| ${maxAbsRef.toExponential(3)} ratio ${ratio.toExponential(3)}; ${mismatches} mismatches, ${nonFinite} non-finite`;
  return { ok, maxAbsErr, maxAbsRef, ratio, mismatches, nonFinite, report: [head, ...lines].join('\n') };
}
