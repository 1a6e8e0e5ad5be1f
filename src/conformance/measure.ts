// The conformance criterion: max|got − ref| ≤ tol · max|ref|, and no NaN/Inf anywhere.

export class Unsupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Unsupported';
  }
}

export interface Measured {
  maxAbsErr: number;
  maxAbsRef: number;
  ratio: number;
  pass: boolean;
  note?: string;
}

export function measure(got: ArrayLike<number>, ref: ArrayLike<number>, tol: number): Measured {
  if (got.length !== ref.length) return { maxAbsErr: Infinity, maxAbsRef: 0, ratio: Infinity, pass: false, note: `got ${got.length} values, expected ${ref.length}` };
  let maxAbsErr = 0;
  let maxAbsRef = 0;
  let nonFinite = 0;
  let firstBad = -1;
  for (let i = 0; i < ref.length; i++) {
    const x = got[i]!;
    if (!Number.isFinite(x)) {
      if (nonFinite++ === 0) firstBad = i;
    }
    maxAbsErr = Math.max(maxAbsErr, Math.abs(x - ref[i]!));
    maxAbsRef = Math.max(maxAbsRef, Math.abs(ref[i]!));
  }
  const ratio = maxAbsRef > 0 ? maxAbsErr / maxAbsRef : maxAbsErr;
  const pass = nonFinite === 0 && ratio <= tol;
  return { maxAbsErr, maxAbsRef, ratio, pass, note: nonFinite ? `${nonFinite} NaN/Inf values in the output (first at index ${firstBad}: ${got[firstBad]})` : undefined };
}

/** A tolerance for people: 1e-2, 7e-2, 1.3e-1 (two significant digits at most). */
export function formatTol(x: number): string {
  return Number.isFinite(x) ? Number(x.toPrecision(2)).toExponential() : String(x);
}

/** Folds several measurements (e.g. every step of a trace) into the worst one. */
export function worst(ms: Measured[]): Measured {
  let w: Measured = { maxAbsErr: 0, maxAbsRef: 0, ratio: 0, pass: true };
  for (const m of ms) {
    if (m.ratio > w.ratio || !m.pass) w = { ...m, pass: w.pass && m.pass, note: m.note ?? w.note };
  }
  return { ...w, pass: ms.every((m) => m.pass) };
}
