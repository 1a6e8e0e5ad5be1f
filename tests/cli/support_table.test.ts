// README's support table is scripts/support-table.ts's output (the code's own lists of pipelines,
// model classes, block types and schedulers), so the two cannot drift apart. To update the README:
//   node --import tsx scripts/support-table.ts --write
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BEGIN, END, supportTable, withTable } from '../../scripts/support-table.ts';

describe('README support table', () => {
  it('is what scripts/support-table.ts prints', () => {
    const readme = readFileSync('README.md', 'utf8');
    const b = readme.indexOf(BEGIN);
    const e = readme.indexOf(END);
    expect(b, `README.md has a ${BEGIN} marker`).toBeGreaterThanOrEqual(0);
    expect(e, `README.md has a ${END} marker after it`).toBeGreaterThan(b);
    const inReadme = readme.slice(b + BEGIN.length, e).trim();
    expect(inReadme, 'run: node --import tsx scripts/support-table.ts --write').toBe(supportTable());
  });

  it('--write replaces only what is between the markers', () => {
    const doc = `# T\n\nbefore\n${BEGIN}\nold table\n${END}\nafter\n`;
    expect(withTable(doc, '| a |')).toBe(`# T\n\nbefore\n${BEGIN}\n| a |\n${END}\nafter\n`);
    expect(() => withTable('no markers', '| a |')).toThrow(/support-table:begin/);
  });
});
