#!/usr/bin/env node
// Runs the TypeScript CLI directly (tsx), after bundling the WGSL kernels into the source tree.
import { register } from 'tsx/esm/api';
import { bundleShaders } from '../scripts/bundle-shaders.mjs';

bundleShaders();
register();
await import('../src/cli/main.ts');
