import { describe, expect, it } from 'vitest';
import { needsOffThreadCheck, SYNC_CHECK_MAX_CHARS } from '../../src/ui/lib/off-thread-check';

describe('which YAML is read off the page’s thread', () => {
  it('reads plain small configs on the page', () => {
    expect(needsOffThreadCheck('models:\n  - model: org/a\n    parameters: {weight: 1.0}\nmerge_method: linear\n')).toBe(false);
    expect(needsOffThreadCheck("merge_method: linear\nparameters: {weight: [1, 0.5]} # a*b & c\n")).toBe(false);
  });

  it('sends anchors, aliases, merge keys, big texts and deep nesting to the worker', () => {
    // The 261-character shared link of issue 10 held a "billion laughs" of this shape.
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]'].join('\n');
    expect(needsOffThreadCheck(bomb)).toBe(true);
    expect(needsOffThreadCheck('base: &base {weight: 1}\nother:\n  <<: *base\n')).toBe(true);
    expect(needsOffThreadCheck('- *x\n')).toBe(true);
    expect(needsOffThreadCheck(`merge_method: linear\n${'#'.repeat(SYNC_CHECK_MAX_CHARS)}\n`)).toBe(true);
    expect(needsOffThreadCheck(`a: ${'['.repeat(600)}${']'.repeat(600)}\n`)).toBe(true);
  });
});
