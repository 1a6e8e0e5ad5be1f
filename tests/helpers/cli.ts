// Runs bin/fresco.js as a user would. The generous limit is for a cold shader cache on a slow CPU
// adapter (every kernel compiled for the first time): a real hang still ends the test.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/fresco.js', import.meta.url));

export const CLI_TIMEOUT_MS = 15 * 60_000;

export function runFresco(args: readonly string[], opts: SpawnSyncOptions = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: CLI_TIMEOUT_MS, ...opts }) as ReturnType<typeof spawnSync> & { stdout: string; stderr: string };
}
