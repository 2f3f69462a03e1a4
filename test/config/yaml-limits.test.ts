import { describe, expect, it } from 'vitest';
import { parseMergeConfig, readYamlDocument, validateConfigText, YAML_LIMITS } from '../../src/config';
import { errorsOf } from './helpers';
import { BILLION_LAUGHS } from './hostile-yaml';

const LINEAR = 'models:\n  - {model: a/one, parameters: {weight: 1}}\n  - {model: b/two, parameters: {weight: 1}}\nmerge_method: linear\n';

function nested(levels: number): string {
  return `${'['.repeat(levels)}${']'.repeat(levels)}`;
}

function onlyError(text: string) {
  const doc = readYamlDocument(text);
  expect(doc.readable).toBe(false);
  expect(doc.issues).toHaveLength(1);
  return doc.issues[0];
}

describe('YAML bounds (alias bombs, depth, size) before anything walks the document', () => {
  it('refuses a billion-laughs document at the first anchor that grows past the value limit', () => {
    expect(BILLION_LAUGHS.length).toBeLessThan(500);
    const issue = onlyError(BILLION_LAUGHS);
    // a: 10 values, b: 91, c: 820, d: 7381, e: 66430, f: 597871 > 100000 → line 6.
    expect(issue).toMatchObject({ severity: 'error', path: '', line: 6 });
    expect(issue.message).toMatch(/more than 100000 values once its aliases \(\*name\) are replaced/);
    expect(issue.message).toMatch(/write a plain config/);
    // The same through every entry point: validate, parse for merging.
    expect(validateConfigText(BILLION_LAUGHS, 'bomb.yml').issues).toEqual([issue]);
    expect(errorsOf(BILLION_LAUGHS, 'bomb.yml')).toEqual([issue]);
  });

  it('accepts aliases that expand below the limit, and refuses one anchor level more', () => {
    const hundred = `[${Array(99).fill('1').join(',')}]`;
    const text = (copies: number) => `${LINEAR}x-block: &blk ${hundred}\nx-uses: [${Array(copies).fill('*blk').join(', ')}]\n`;
    // root map (1) + merge_method etc. + x-block (100) + copies * 100 values.
    const ok = parseMergeConfig(text(990));
    expect(ok.config.merge_method).toBe('linear');
    const issue = onlyError(text(1000));
    expect(issue.line).toBe(6);
    expect(issue.message).toMatch(/more than 100000 values/);
  });

  it('counts aliases: the limit is accepted, one more is refused at its position', () => {
    const text = (n: number) => `${LINEAR}x-one: &one 1\nx-list: [${Array(n).fill('*one').join(', ')}]\n`;
    expect(validateConfigText(text(YAML_LIMITS.maxAliases)).ok).toBe(true);
    const issue = onlyError(text(YAML_LIMITS.maxAliases + 1));
    // The 1001st alias: "x-list: [" is 9 characters, each earlier alias takes 6 ("*one, ").
    expect(issue).toMatchObject({ line: 6, column: 10 + 6 * YAML_LIMITS.maxAliases });
    expect(issue.message).toMatch(/more than 1000 aliases/);
    // A 100,000-alias list is refused by the text scan, before the parser sees it.
    expect(onlyError(text(100_000)).message).toMatch(/characters long|more than 1000 aliases/);
  });

  it('allows 64 levels of nesting and refuses 65, with aliases counted at the depth they land', () => {
    expect(readYamlDocument(`${LINEAR}x: ${nested(YAML_LIMITS.maxDepth)}\n`).readable).toBe(true);
    const issue = onlyError(`${LINEAR}x: ${nested(YAML_LIMITS.maxDepth + 1)}\n`);
    expect(issue).toMatchObject({ line: 5, column: 4 + YAML_LIMITS.maxDepth });
    expect(issue.message).toMatch(/more than 64 levels deep/);
    // 40 levels under an anchor, used 30 levels down: 70 levels once expanded.
    const viaAlias = onlyError(`${LINEAR}x: &deep ${nested(40)}\ny: ${'['.repeat(30)}*deep${']'.repeat(30)}\n`);
    expect(viaAlias.message).toMatch(/more than 64 levels deep/);
    expect(viaAlias.line).toBe(6);
  });

  it('refuses very deep nesting from the text alone (block, compact and flow)', () => {
    // The estimate allows twice the depth: the key x is one level, so the 128th bracket is refused.
    const flow = onlyError(`${LINEAR}x: ${nested(100_000)}\n`);
    expect(flow).toMatchObject({ line: 5, column: 3 + 2 * YAML_LIMITS.maxDepth });
    const compact = onlyError(`${LINEAR}x:\n  ${'- '.repeat(10_000)}z\n`);
    expect(compact).toMatchObject({ line: 6, column: 1 });
    const block = Array.from({ length: 200 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n');
    expect(onlyError(block).message).toMatch(/more than 64 levels deep/);
  });

  it('does not mistake brackets, quotes and stars in plain scalars, comments or block scalars for nesting', () => {
    const text =
      LINEAR +
      `chat_template: |\n${'  {% if x %}{{ [ [ [\n'.repeat(200)}` +
      `x-note: it's a[0] *not an alias* # {{{{ [[[[\n` +
      `x-quoted: "${'['.repeat(300)}"\n` +
      `x-single: '${'{'.repeat(300)}'\n`;
    const doc = readYamlDocument(text);
    expect(doc.issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(doc.readable).toBe(true);
    expect((doc.root as Record<string, string>)['x-single']).toBe('{'.repeat(300));
  });

  it('refuses a text longer than the size limit without parsing it', () => {
    const issue = onlyError(`${LINEAR}# ${'x'.repeat(YAML_LIMITS.maxChars)}\n`);
    expect(issue).toMatchObject({ line: 1, column: 1 });
    expect(issue.message).toMatch(/characters long, more than the 262144 a config may have/);
  });

  it('refuses an alias inside the list it refers to', () => {
    const issue = onlyError(`${LINEAR}x: &loop [1, *loop]\n`);
    expect(issue.message).toMatch(/alias \*loop refers to a list or mapping that contains it|Alias|alias/);
  });
});
