// diffusers writes configs with Python's json module, which spells non-finite floats as bare
// NaN, Infinity and -Infinity (DPMSolverMultistepScheduler's lambda_min_clipped is -inf by default).
// JSON.parse rejects those; this reads them as the numbers Python meant, and nothing else differs.

const TOKENS = /"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g;
const MARK = '\u0000fresco-nonfinite:';

export function parsePythonJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (first) {
    let found = false;
    // Strings are matched whole so that a NaN inside one is left alone.
    const marked = text.replace(TOKENS, (tok) => {
      if (tok.startsWith('"')) return tok;
      found = true;
      return JSON.stringify(MARK + tok);
    });
    if (!found) throw first;
    return JSON.parse(marked, (_k, v) => (typeof v === 'string' && v.startsWith(MARK) ? Number(v.slice(MARK.length)) : v));
  }
}
