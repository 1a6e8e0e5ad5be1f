// `npm run bench`: the generation bench in Node (Dawn) and then in headless Chromium (browser
// WebGPU), each on whatever adapter it finds, with the same flags (each ignores the other's).
// `npm run bench:node` and `npm run bench:browser` run one of them.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const run = (script: string) => spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench', script), ...args], { stdio: 'inherit', cwd: root }).status ?? 1;

let status = run('generate.ts');
const chromium = process.env.CHROMIUM ?? '/usr/bin/chromium';
if (existsSync(chromium)) status ||= run('browser.ts');
else console.error(`\nno Chromium at ${chromium}: the browser bench is skipped (set CHROMIUM=/path/to/chrome)`);
process.exit(status);
