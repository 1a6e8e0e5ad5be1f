// Class names and labels of class-conditional models, shared by the library (generate's `class`)
// and the CLI (--class) so both accept and describe the same labels. The null class (the label
// guidance uses as "no class") is a valid request: cond and uncond are then the same, so the
// guided prediction is the unconditional one and the sample is unconditional. GPU-free.

/** How the null class is named in messages and output; `null` is accepted as its name. */
export const NULL_CLASS_DESCRIPTION = 'null class (unconditional)';

/** A label for the user: its name, the null class, or the number. */
export function describeClass(label: number, names: readonly string[] | null, nullClass: number): string {
  if (label === nullClass) return NULL_CLASS_DESCRIPTION;
  return names?.[label] ?? String(label);
}

/** "0 T-shirt/top, …, 9 Ankle boot, 10 null class (unconditional)". */
export function classList(names: readonly string[], nullClass: number): string {
  const entries = names.flatMap((n, i) => (i === nullClass ? [] : [`${i} ${n}`]));
  return [...entries, `${nullClass} ${NULL_CLASS_DESCRIPTION}`].join(', ');
}

/**
 * Resolves class names (case-insensitive, or a unique prefix, or `null` for the null class) and
 * labels (numbers or digit strings, 0..numClasses − 1, the null class included). `fail` makes the
 * caller's error type.
 */
export function resolveClassLabels(requested: readonly (number | string)[], names: readonly string[] | null, numClasses: number, nullClass: number, fail: (message: string) => Error): number[] {
  const nullNote = `${nullClass} is the null class: an unconditional sample`;
  return requested.map((r) => {
    if (typeof r === 'number' || /^\d+$/.test(r)) {
      const n = Number(r);
      if (!Number.isInteger(n) || n < 0 || n >= numClasses) throw fail(`class ${r} is out of range (0..${numClasses - 1}; ${nullNote})`);
      return n;
    }
    const key = r.toLowerCase();
    if (key === 'null') return nullClass;
    if (!names) throw fail(`this model has no class names; use a label 0..${numClasses - 1} (${nullNote})`);
    const exact = names.findIndex((n) => n.toLowerCase() === key);
    if (exact >= 0) return exact;
    const partial = names.flatMap((n, i) => (n.toLowerCase().startsWith(key) || n.toLowerCase().split('/').includes(key) ? [i] : []));
    if (partial.length === 1) return partial[0]!;
    throw fail(`unknown class ${JSON.stringify(r)}${partial.length > 1 ? ' (ambiguous)' : ''}; classes: ${classList(names, nullClass)}`);
  });
}
