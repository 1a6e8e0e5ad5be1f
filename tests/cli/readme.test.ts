// README's CLI block is the --help text, so the two cannot drift apart.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GENERATE_USAGE } from '../../src/cli/args.ts';

describe('README', () => {
  it("shows fresco generate's options exactly as --help prints them", () => {
    const readme = readFileSync('README.md', 'utf8');
    const block = /## CLI\n\n```\n([\s\S]*?)\n```/.exec(readme);
    expect(block, 'README.md has a ## CLI section starting with a code block').not.toBeNull();
    const [readmeFirst, ...readmeOptions] = block![1]!.split('\n');
    const [usageFirst, ...usageOptions] = GENERATE_USAGE.split('\n');
    // The first line differs on purpose: the README adds the npm form.
    expect(readmeFirst).toMatch(/^fresco generate \[options\]/);
    expect(usageFirst).toBe('usage: fresco generate [options]');
    expect(readmeOptions).toEqual(usageOptions);
  });
});
