import { describe, expect, it } from 'vitest';
import { parseInline, parseMarkdown, safeHref, type Block, type Inline } from '../../src/ui/lib/markdown';

function text(nodes: readonly Inline[]): string {
  return nodes.map((n) => (n.type === 'text' || n.type === 'code' ? n.text : text(n.children))).join('');
}

const CARD = `---
base_model:
- org/a
library_name: transformers
---
# my <script>alert(1)</script> model

This is a merge of pre-trained language models created with Alloy, which runs [mergekit](https://github.com/arcee-ai/mergekit) configurations.

## Merge Details
### Merge Method

This model was merged using the [TIES](https://arxiv.org/abs/2306.01708) merge method using [org/base](https://huggingface.co/org/base) as a base.

### Models Merged

* [org/a](https://huggingface.co/org/a)
* evil <img src=x onerror=alert(1)>

\`\`\`yaml
models:
  - model: org/a
\`\`\`
`;

describe('parseMarkdown', () => {
  it('reads a model card into blocks', () => {
    const blocks = parseMarkdown(CARD);
    expect(blocks.map((b) => b.type)).toEqual([
      'frontmatter',
      'heading',
      'paragraph',
      'heading',
      'heading',
      'paragraph',
      'heading',
      'list',
      'code',
    ]);
    expect((blocks[0] as Extract<Block, { type: 'frontmatter' }>).text).toContain('library_name');
    const code = blocks[8] as Extract<Block, { type: 'code' }>;
    expect(code.lang).toBe('yaml');
    expect(code.text).toBe('models:\n  - model: org/a');
  });

  it('keeps HTML as text, never as markup', () => {
    const blocks = parseMarkdown(CARD);
    const heading = blocks[1] as Extract<Block, { type: 'heading' }>;
    expect(text(heading.children)).toBe('my <script>alert(1)</script> model');
    const list = blocks[7] as Extract<Block, { type: 'list' }>;
    expect(text(list.items[1])).toBe('evil <img src=x onerror=alert(1)>');
  });

  it('reads tables, quotes, rules and numbered lists', () => {
    const blocks = parseMarkdown('| a | b \\| c |\n|---|:-:|\n| 1 | **2** |\n\n> quoted\n> text\n\n---\n\n1. one\n2. two\n');
    expect(blocks.map((b) => b.type)).toEqual(['table', 'quote', 'rule', 'list']);
    const table = blocks[0] as Extract<Block, { type: 'table' }>;
    expect(table.header.map(text)).toEqual(['a', 'b | c']);
    expect(table.rows[0][1][0].type).toBe('strong');
    expect((blocks[3] as Extract<Block, { type: 'list' }>).ordered).toBe(true);
  });
});

describe('links', () => {
  it('keeps only http(s) and mailto links', () => {
    expect(safeHref('https://huggingface.co/a/b')).toBe('https://huggingface.co/a/b');
    expect(safeHref('mailto:x@y.z')).toBe('mailto:x@y.z');
    expect(safeHref('javascript:alert(1)')).toBeUndefined();
    expect(safeHref('JaVaScRiPt:alert(1)')).toBeUndefined();
    expect(safeHref('java\tscript:alert(1)')).toBeUndefined();
    expect(safeHref('data:text/html,<script>')).toBeUndefined();
    expect(safeHref('/relative')).toBeUndefined();
  });

  it('renders an unsafe link as its text and an image as a link', () => {
    expect(parseInline('[click](javascript:alert(1))')).toEqual([{ type: 'text', text: 'click' }]);
    expect(parseInline('![logo](https://x.y/l.png)')).toEqual([
      { type: 'link', href: 'https://x.y/l.png', children: [{ type: 'text', text: 'image: logo' }] },
    ]);
    expect(parseInline('<https://a.b/c>')[0]).toMatchObject({ type: 'link', href: 'https://a.b/c' });
  });

  it('reads inline code, emphasis and escapes', () => {
    expect(parseInline('use `--random-seed 1` and *not* __this__ \\*x\\*')).toEqual([
      { type: 'text', text: 'use ' },
      { type: 'code', text: '--random-seed 1' },
      { type: 'text', text: ' and ' },
      { type: 'em', children: [{ type: 'text', text: 'not' }] },
      { type: 'text', text: ' ' },
      { type: 'strong', children: [{ type: 'text', text: 'this' }] },
      { type: 'text', text: ' *x*' },
    ]);
    expect(parseInline('snake_case_name')).toEqual([{ type: 'text', text: 'snake_case_name' }]);
  });
});
