// Sums a FRESCO_COMPILE_LOG file (tests/helpers/compile_log.ts): kernel compile time by shader,
// by test file, and the slowest variants.
//   node scripts/compile-log-summary.mjs FILE [--top N]
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node scripts/compile-log-summary.mjs FILE [--top N]');
  process.exit(2);
}
const topArg = process.argv.indexOf('--top');
const top = topArg > 0 ? Number(process.argv[topArg + 1]) : 15;
const rows = readFileSync(file, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => {
    const [ms, test, key] = l.split('\t');
    return { ms: Number(ms), test, key, shader: key.split('|')[0] };
  });

function table(title, keyOf) {
  const sums = new Map();
  for (const r of rows) {
    const k = keyOf(r);
    const s = sums.get(k) ?? { ms: 0, n: 0 };
    s.ms += r.ms;
    s.n++;
    sums.set(k, s);
  }
  console.log(`\n${title}`);
  for (const [k, s] of [...sums].sort((a, b) => b[1].ms - a[1].ms).slice(0, top)) {
    console.log(`${(s.ms / 1000).toFixed(1).padStart(8)} s  ${String(s.n).padStart(5)}  ${k}`);
  }
}

const total = rows.reduce((a, r) => a + r.ms, 0);
console.log(`${rows.length} kernels compiled, ${(total / 1000).toFixed(1)} s in all (both workers together)`);
table('by shader (s, kernels)', (r) => r.shader);
table('by test file (s, kernels)', (r) => r.test);
console.log(`\nslowest ${top} variants`);
for (const r of [...rows].sort((a, b) => b.ms - a.ms).slice(0, top)) console.log(`${(r.ms / 1000).toFixed(2).padStart(8)} s  ${r.test}  ${r.key.slice(0, 160)}`);
