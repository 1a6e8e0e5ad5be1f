#!/usr/bin/env node
// Runs the TypeScript CLI directly (tsx), after bundling the WGSL kernels into the source tree.
//
// The CLI runs in a child process whose stderr passes through here line by line, without the two
// notes Dawn's native code prints on every adapter request where a Vulkan driver reports huge
// dynamic-buffer limits (lavapipe: "maxDynamic…BuffersPerPipelineLayout artificially reduced …").
// They concern Dawn's own bookkeeping, not the run, and native code cannot be silenced from JS.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const DAWN_NOTE = /^Warning: maxDynamic\w+PerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;

if (process.env.FRESCO_CLI_CHILD) {
  const { register } = await import('tsx/esm/api');
  const { bundleShaders } = await import('../scripts/bundle-shaders.mjs');
  bundleShaders();
  register();
  await import('../src/cli/main.ts');
} else {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'pipe'],
    // The child's stderr is a pipe: tell it whether ours is a terminal (progress bar or plain lines).
    env: { ...process.env, FRESCO_CLI_CHILD: '1', FRESCO_STDERR_TTY: process.stderr.isTTY ? '1' : '' },
  });
  let pending = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text) => {
    const lines = (pending + text).split('\n');
    pending = lines.pop();
    const kept = lines.filter((l) => !DAWN_NOTE.test(l));
    if (kept.length) process.stderr.write(kept.join('\n') + '\n');
    // A partial line (a progress bar redrawn with \r) goes out at once unless it may be a note.
    if (pending && !'Warning: maxDynamic'.startsWith(pending.slice(0, 19))) {
      process.stderr.write(pending);
      pending = '';
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('close', (code, signal) => {
    process.stderr.write(pending, () => {
      if (!signal) return process.exit(code ?? 1);
      // Die of the same signal, as a shell expects; where Node does not die of it, its exit status.
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      process.exit(128 + (constants.signals[signal] ?? 0));
    });
  });
}
