// A small preprocessor for the WGSL templates in shaders/: `#if NAME` / `#elif NAME` / `#else` /
// `#endif` on their own lines select blocks (NAME is truthy in params, `!NAME` negates), `{{NAME}}`
// substitutes a parameter, `#include "file"` inlines another shader, and `#unroll NAME COUNT` …
// `#endunroll` repeats its lines COUNT times (a number or a parameter) with {{NAME}} = 0, 1, …:
// straight-line code for CPU adapters, whose shader compilers (SwiftShader's above all) keep a
// private array indexed in a loop in memory. Parameters only carry compile-time choices (tile
// sizes, fused epilogues, hooks); shapes always travel as uniforms.

export type TemplateParams = Record<string, string | number | boolean | undefined>;

export function expandTemplate(
  source: string,
  params: TemplateParams,
  resolveInclude: (name: string) => string,
  name = 'shader',
): string {
  const out: string[] = [];
  // Each frame: is this branch live, has any branch of the chain been taken, was the parent live.
  const stack: { live: boolean; taken: boolean; parent: boolean }[] = [];
  const live = () => (stack.length === 0 ? true : stack[stack.length - 1]!.live);
  const truth = (expr: string): boolean => {
    const neg = expr.startsWith('!');
    const key = neg ? expr.slice(1).trim() : expr;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`${name}: bad #if expression '${expr}'`);
    const v = params[key];
    const t = v !== undefined && v !== false && v !== 0 && v !== '';
    return neg ? !t : t;
  };
  const lines = source.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const m = /^\s*#(if|elif|else|endif|include|unroll|endunroll)\b\s*(.*)$/.exec(line);
    if (!m) {
      if (live()) out.push(line);
      continue;
    }
    const [, directive, rest] = m as unknown as [string, string, string];
    const arg = rest.trim();
    if (directive === 'unroll') {
      // The body up to the matching #endunroll, expanded once per index (nested unrolls inside).
      let depth = 1;
      let j = i + 1;
      for (; j < lines.length; j++) {
        const d = /^\s*#(unroll|endunroll)\b/.exec(lines[j]!);
        if (d) depth += d[1] === 'unroll' ? 1 : -1;
        if (depth === 0) break;
      }
      if (depth !== 0) throw new Error(`${name}:${i + 1}: #unroll without #endunroll`);
      if (!live()) {
        i = j;
        continue;
      }
      const u = /^([A-Za-z_][A-Za-z0-9_]*)\s+([A-Za-z0-9_]+)$/.exec(arg);
      if (!u) throw new Error(`${name}:${i + 1}: bad #unroll (want #unroll NAME COUNT)`);
      const [, index, countArg] = u as unknown as [string, string, string];
      const given = /^\d+$/.test(countArg) ? Number(countArg) : params[countArg];
      const count = typeof given === 'number' ? given : NaN;
      if (!Number.isInteger(count) || count < 0) throw new Error(`${name}:${i + 1}: #unroll count '${countArg}' is not a whole number`);
      const body = lines.slice(i + 1, j).join('\n');
      for (let v = 0; v < count; v++) out.push(expandTemplate(body, { ...params, [index]: v }, resolveInclude, name));
      i = j;
      continue;
    }
    if (directive === 'endunroll') throw new Error(`${name}:${i + 1}: #endunroll without #unroll`);
    if (directive === 'if') {
      const parent = live();
      const t = parent && truth(arg);
      stack.push({ live: t, taken: t, parent });
    } else if (directive === 'elif' || directive === 'else') {
      const top = stack[stack.length - 1];
      if (!top) throw new Error(`${name}:${i + 1}: #${directive} without #if`);
      const t = top.parent && !top.taken && (directive === 'else' || truth(arg));
      top.live = t;
      top.taken ||= t;
    } else if (directive === 'endif') {
      if (!stack.pop()) throw new Error(`${name}:${i + 1}: #endif without #if`);
    } else if (live()) {
      const inc = /^"([^"]+)"$/.exec(arg);
      if (!inc) throw new Error(`${name}:${i + 1}: bad #include`);
      out.push(expandTemplate(resolveInclude(inc[1]!), params, resolveInclude, inc[1]));
    }
  }
  if (stack.length) throw new Error(`${name}: unterminated #if`);
  return out.join('\n').replace(/\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}/g, (_, key: string) => {
    const v = params[key];
    if (v === undefined) throw new Error(`${name}: template parameter {{${key}}} has no value`);
    return String(v);
  });
}
