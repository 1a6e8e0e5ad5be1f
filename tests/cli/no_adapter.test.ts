// With no usable Vulkan driver at all, the CLI says so and what to install, instead of hanging.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// VK_ICD_FILENAMES only hides adapters where Dawn uses Vulkan.
describe.runIf(process.platform === 'linux')('no WebGPU adapter', () => {
  it('is one clear error naming what to install', () => {
    const r = spawnSync(process.execPath, ['bin/fresco.js', 'generate', '--class', '0', '--steps', '1', '--out', '/tmp/fresco-never.png'], {
      encoding: 'utf8',
      timeout: 5 * 60_000,
      env: { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json' },
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/No WebGPU adapter found/);
    expect(r.stderr).toMatch(/apt install chromium libvulkan1/);
  });
});
