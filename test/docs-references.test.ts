/**
 * The code cites its contract as `docs/<file>.md §N` (docs/README.md). Every such reference in
 * the code of src/, test/, bench/ and scripts/ must name a file of docs/ and sections that exist in it, every
 * section sign must belong to such a reference (a bare "§1.4" says nothing about which file), and
 * nothing may point at the notes outside the repository that the docs replaced.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOCS = join(ROOT, 'docs');
const SCANNED = ['src', 'test', 'bench', 'scripts'];
// Code only: data files (e.g. mergekit's configs in test/config/corpus) cite mergekit's own docs/.
const TEXT_FILE = /\.(ts|mts|js|mjs|svelte|wgsl)$/;
const THIS_FILE = relative(ROOT, fileURLToPath(import.meta.url));

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : filesUnder(path);
    return TEXT_FILE.test(name) ? [path] : [];
  });
}

/** Section numbers of a docs page: headings such as `## 4. Sparsification` or `### 4.1 magnitude`. */
function sectionsOf(markdown: string): Set<string> {
  const sections = new Set<string>();
  for (const match of markdown.matchAll(/^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s/gm)) sections.add(match[1]);
  return sections;
}

const SECTION = String.raw`§\s?\d+(?:\.\d+)*(?:\s?[–-]\s?\d+(?:\.\d+)*)?`;
/**
 * `docs/x.md`, then optionally a list of sections: `§4`, `§4.1`, `§8–15`, `§1, §2`. A comment
 * line break (`*`, `//`) may separate the file from its first section.
 */
const REFERENCE = new RegExp(String.raw`docs/([\w.-]+\.md)((?:[\s*/]*${SECTION}(?:\s*,\s*${SECTION})*)?)`, 'g');

interface Reference {
  readonly where: string;
  readonly file: string;
  readonly sections: string[];
}

/** The references in one text, and the section signs that belong to none. */
function parseReferences(text: string, where: string): { references: Reference[]; bare: string[] } {
  const references: Reference[] = [];
  const claimed = new Set<number>();
  for (const match of text.matchAll(REFERENCE)) {
    const sections: string[] = [];
    for (const part of match[2].matchAll(/§\s?(\d+(?:\.\d+)*)(?:\s?[–-]\s?(\d+(?:\.\d+)*))?/g)) {
      sections.push(part[1]);
      if (part[2]) sections.push(part[2]);
    }
    const start = match.index + match[0].length - match[2].length;
    for (let i = start; i < match.index + match[0].length; i++) if (text[i] === '§') claimed.add(i);
    references.push({ where, file: match[1], sections });
  }
  const bare: string[] = [];
  for (let i = text.indexOf('§'); i >= 0; i = text.indexOf('§', i + 1)) {
    if (!claimed.has(i)) bare.push(`${where}: "${text.slice(Math.max(0, i - 40), i + 10).replace(/\s+/g, ' ')}"`);
  }
  return { references, bare };
}

const docs = new Map(
  readdirSync(DOCS)
    .filter((name) => name.endsWith('.md'))
    .map((name) => [name, sectionsOf(readFileSync(join(DOCS, name), 'utf8'))]),
);

const scanned = SCANNED.flatMap((dir) => filesUnder(join(ROOT, dir)))
  .map((path) => ({ path: relative(ROOT, path), text: readFileSync(path, 'utf8') }))
  .filter((file) => file.path !== THIS_FILE);

describe('references to docs/', () => {
  it('parses the reference forms the code uses', () => {
    const { references, bare } = parseReferences(
      'a (docs/methods.md §4.1, §8–15) b docs/config.md c (docs/tokenizers.md\n * §3, more) d §2 e',
      'sample',
    );
    expect(references.map((r) => [r.file, r.sections])).toEqual([
      ['methods.md', ['4.1', '8', '15']],
      ['config.md', []],
      ['tokenizers.md', ['3']],
    ]);
    expect(bare).toHaveLength(1);
    expect(sectionsOf('# Title\n## 0. Glance\n### 0.1 Parameters\n## 12. model_stock\ntext ## 9. no\n')).toEqual(
      new Set(['0', '0.1', '12']),
    );
  });

  it('finds the references (the scan is not empty)', () => {
    const count = scanned.reduce((n, file) => n + parseReferences(file.text, file.path).references.length, 0);
    expect(count).toBeGreaterThan(100);
    expect(docs.get('methods.md')?.size).toBeGreaterThan(20);
  });

  it('every reference names a docs file and sections that exist', () => {
    const broken: string[] = [];
    for (const file of scanned) {
      for (const ref of parseReferences(file.text, file.path).references) {
        const sections = docs.get(ref.file);
        if (!sections) {
          broken.push(`${ref.where}: docs/${ref.file} does not exist`);
          continue;
        }
        for (const section of ref.sections) {
          if (!sections.has(section)) broken.push(`${ref.where}: docs/${ref.file} has no section §${section}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('every section sign belongs to a docs/<file>.md reference', () => {
    const bare = scanned.flatMap((file) => parseReferences(file.text, file.path).bare);
    expect(bare).toEqual([]);
  });

  it('nothing points at the notes outside the repository', () => {
    const outside = /MERGEKIT_SPEC|BROWSER_NOTES|HUB_SPACES_NOTES|MOE_NOTES|DESIGN\.md|\bTESTING\.md|\/work\/shared/;
    const found = scanned.flatMap((file) =>
      file.text
        .split('\n')
        .map((line, i) => (outside.test(line) ? `${file.path}:${i + 1}: ${line.trim()}` : null))
        .filter((line): line is string => line !== null),
    );
    expect(found).toEqual([]);
  });

  it('links between docs pages name pages and headings that exist', () => {
    // GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
    const slug = (heading: string): string =>
      heading.trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-');
    const anchors = new Map(
      [...docs.keys()].map((name) => {
        const text = readFileSync(join(DOCS, name), 'utf8');
        return [name, new Set([...text.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1])))];
      }),
    );
    const broken: string[] = [];
    for (const name of docs.keys()) {
      const text = readFileSync(join(DOCS, name), 'utf8');
      for (const link of text.matchAll(/\]\(([\w.-]+\.md)?(?:#([^)]+))?\)/g)) {
        const target = link[1] ?? name;
        if (!link[1] && !link[2]) continue;
        if (!anchors.has(target)) broken.push(`${name}: ${link[0]} (no docs/${target})`);
        else if (link[2] && !anchors.get(target)!.has(link[2])) broken.push(`${name}: ${link[0]} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('the docs index lists every docs page', () => {
    const index = readFileSync(join(DOCS, 'README.md'), 'utf8');
    const unlisted = [...docs.keys()].filter((name) => name !== 'README.md' && !index.includes(`](${name})`));
    expect(unlisted).toEqual([]);
  });
});
