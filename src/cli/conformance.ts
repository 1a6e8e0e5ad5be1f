// npm run conformance -- DIR [--only a,b]
import { existsSync, statSync } from 'node:fs';
import { getGpu } from '../gpu/device.ts';
import { Runtime } from '../gpu/runtime.ts';
import { formatTable, listCases, runCase, type CaseResult } from '../conformance/runner.ts';

function usage(msg?: string): never {
  if (msg) console.error(`error: ${msg}`);
  console.error('usage: npm run conformance -- DIR [--only case1,case2]');
  process.exit(2);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let dir: string | undefined;
  let only: string[] | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--only') only = (args[++i] ?? usage('--only needs a list')).split(',').filter(Boolean);
    else if (a.startsWith('--only=')) only = a.slice(7).split(',').filter(Boolean);
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (dir) usage('only one DIR');
    else dir = a;
  }
  if (!dir) usage('DIR is required');
  if (!existsSync(dir)) usage(`${dir} does not exist (the repository's own cases: tests/fixtures, tests/fixtures/variants)`);
  if (!statSync(dir).isDirectory()) usage(`${dir} is not a folder of case folders`);
  let cases = listCases(dir);
  if (only) {
    const missing = only.filter((o) => !cases.includes(o));
    if (missing.length) usage(`no such case in ${dir}: ${missing.join(', ')}`);
    cases = cases.filter((c) => only!.includes(c));
  }
  if (!cases.length) usage(`no case folders in ${dir}`);
  const gpu = await getGpu({ wantF16: true });
  const rt = new Runtime(gpu);
  console.log(`adapter: ${gpu.adapterName}`);
  console.log(gpu.features.has('shader-f16') ? 'precision: f32 and f16 (shader-f16)' : 'precision: f32 only (adapter has no shader-f16)');
  const rows: CaseResult[] = [];
  for (const c of cases) {
    const r = await runCase(rt, dir, c);
    rows.push(r);
    console.error(`${r.status.padEnd(11)} ${c} (${(r.ms / 1000).toFixed(1)}s)`);
  }
  console.log(formatTable(rows));
  const bad = rows.filter((r) => r.status !== 'pass');
  console.log(bad.length ? `${bad.length} of ${rows.length} cases did not pass` : `all ${rows.length} cases passed`);
  process.exit(bad.length ? 1 : 0);
}

main().catch((e) => {
  console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
