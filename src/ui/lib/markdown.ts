/**
 * A small Markdown reader for model-card previews. It returns a tree of plain data that a Svelte
 * component renders as elements with text nodes, so nothing from the card (model names, configs,
 * raw HTML) is ever parsed as HTML: `<script>` in a card shows up as the text "<script>". Links are
 * kept only for http(s) and mailto URLs; images become links (nothing is loaded from the card).
 *
 * Covered: YAML front matter, ATX headings, paragraphs, fenced code, bullet and numbered lists,
 * block quotes, rules, pipe tables; inline code, bold, italics, links, autolinks, escapes.
 */

export type Inline =
  | { readonly type: 'text'; readonly text: string }
  | { readonly type: 'code'; readonly text: string }
  | { readonly type: 'strong'; readonly children: readonly Inline[] }
  | { readonly type: 'em'; readonly children: readonly Inline[] }
  | { readonly type: 'link'; readonly href: string; readonly children: readonly Inline[] };

export type Block =
  | { readonly type: 'frontmatter'; readonly text: string }
  | { readonly type: 'heading'; readonly level: 1 | 2 | 3 | 4 | 5 | 6; readonly children: readonly Inline[] }
  | { readonly type: 'paragraph'; readonly children: readonly Inline[] }
  | { readonly type: 'code'; readonly lang: string; readonly text: string }
  | { readonly type: 'list'; readonly ordered: boolean; readonly items: readonly (readonly Inline[])[] }
  | { readonly type: 'quote'; readonly children: readonly Block[] }
  | { readonly type: 'rule' }
  | { readonly type: 'table'; readonly header: readonly (readonly Inline[])[]; readonly rows: readonly (readonly (readonly Inline[])[])[] };

/** The URL if it is safe to put in an href (http, https, mailto), else undefined. */
export function safeHref(url: string): string | undefined {
  const trimmed = url.trim();
  // Browsers ignore tabs and newlines inside URLs ("java\tscript:"), so reject any control character.
  if (/[\u0000-\u001f\u007f]/.test(trimmed)) return undefined;
  if (/^https?:\/\/[^\s]+$/i.test(trimmed) || /^mailto:[^\s]+$/i.test(trimmed)) return trimmed;
  return undefined;
}

export function parseMarkdown(source: string): Block[] {
  const lines = source.replace(/\r\n?/g, '\n').split('\n');
  const blocks: Block[] = [];
  let i = 0;
  if (lines[0]?.trim() === '---') {
    const end = lines.findIndex((line, j) => j > 0 && line.trim() === '---');
    if (end > 0) {
      blocks.push({ type: 'frontmatter', text: lines.slice(1, end).join('\n') });
      i = end + 1;
    }
  }
  blocks.push(...parseBlocks(lines.slice(i)));
  return blocks;
}

const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([^`\s]*)/;
const HEADING = /^\s{0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const RULE = /^\s{0,3}([-*_])(?:\s*\1){2,}\s*$/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}\d{1,9}[.)]\s+(.*)$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;
const TABLE_SEPARATOR = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;

function parseBlocks(lines: readonly string[]): Block[] {
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === '') {
      i++;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[1];
      const body: string[] = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(marker)) body.push(lines[i++]);
      i++; // closing fence (or end of text)
      blocks.push({ type: 'code', lang: fence[2] ?? '', text: body.join('\n') });
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      blocks.push({ type: 'heading', level: heading[1].length as 1 | 2 | 3 | 4 | 5 | 6, children: parseInline(heading[2] ?? '') });
      i++;
      continue;
    }
    if (RULE.test(line)) {
      blocks.push({ type: 'rule' });
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      const body: string[] = [];
      while (i < lines.length && QUOTE.test(lines[i])) body.push(QUOTE.exec(lines[i++])![1]);
      blocks.push({ type: 'quote', children: parseBlocks(body) });
      continue;
    }
    const bullet = BULLET.exec(line);
    const numbered = NUMBERED.exec(line);
    if (bullet || numbered) {
      const pattern = bullet ? BULLET : NUMBERED;
      const items: Inline[][] = [];
      let current: string[] = [];
      while (i < lines.length) {
        const l = lines[i];
        const item = pattern.exec(l);
        if (item) {
          if (current.length > 0) items.push(parseInline(current.join(' ')));
          current = [item[1]];
        } else if (l.trim() !== '' && /^\s+/.test(l) && current.length > 0) {
          current.push(l.trim().replace(/^[-*+]\s+|^\d{1,9}[.)]\s+/, ''));
        } else break;
        i++;
      }
      if (current.length > 0) items.push(parseInline(current.join(' ')));
      blocks.push({ type: 'list', ordered: !bullet, items });
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_SEPARATOR.test(lines[i + 1]) && lines[i + 1].includes('-')) {
      const header = splitRow(line).map(parseInline);
      i += 2;
      const rows: Inline[][][] = [];
      while (i < lines.length && lines[i].includes('|') && lines[i].trim() !== '') {
        rows.push(splitRow(lines[i++]).map(parseInline));
      }
      blocks.push({ type: 'table', header, rows });
      continue;
    }
    const body: string[] = [];
    while (
      i < lines.length &&
      lines[i].trim() !== '' &&
      !FENCE.test(lines[i]) &&
      !HEADING.test(lines[i]) &&
      !QUOTE.test(lines[i]) &&
      !(body.length > 0 && (BULLET.test(lines[i]) || RULE.test(lines[i])))
    ) {
      body.push(lines[i++].trim());
    }
    blocks.push({ type: 'paragraph', children: parseInline(body.join(' ')) });
  }
  return blocks;
}

function splitRow(line: string): string[] {
  let text = line.trim();
  if (text.startsWith('|')) text = text.slice(1);
  if (text.endsWith('|') && !text.endsWith('\\|')) text = text.slice(0, -1);
  const cells: string[] = [];
  let cell = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && text[i + 1] === '|') {
      cell += '|';
      i++;
    } else if (text[i] === '|') {
      cells.push(cell.trim());
      cell = '';
    } else cell += text[i];
  }
  cells.push(cell.trim());
  return cells;
}

const ESCAPABLE = '\\`*_{}[]()#+-.!|<>~';

export function parseInline(text: string): Inline[] {
  const out: Inline[] = [];
  let buffer = '';
  const flush = () => {
    if (buffer !== '') out.push({ type: 'text', text: buffer });
    buffer = '';
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length && ESCAPABLE.includes(text[i + 1])) {
      buffer += text[i + 1];
      i += 2;
      continue;
    }
    if (c === '`') {
      let ticks = 1;
      while (text[i + ticks] === '`') ticks++;
      const marker = '`'.repeat(ticks);
      const end = text.indexOf(marker, i + ticks);
      if (end >= 0) {
        flush();
        out.push({ type: 'code', text: text.slice(i + ticks, end).replace(/^ (.+) $/, '$1') });
        i = end + ticks;
        continue;
      }
      buffer += marker;
      i += ticks;
      continue;
    }
    if ((c === '*' || c === '_') && text[i + 1] === c) {
      const end = text.indexOf(c + c, i + 2);
      if (end > i + 2) {
        flush();
        out.push({ type: 'strong', children: parseInline(text.slice(i + 2, end)) });
        i = end + 2;
        continue;
      }
    }
    if (c === '*' || (c === '_' && !/\w/.test(text[i - 1] ?? ''))) {
      const end = findEmphasisEnd(text, i + 1, c);
      if (end > i + 1 && text[i + 1] !== ' ') {
        flush();
        out.push({ type: 'em', children: parseInline(text.slice(i + 1, end)) });
        i = end + 1;
        continue;
      }
    }
    if (c === '<') {
      const m = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i.exec(text.slice(i));
      if (m) {
        const href = safeHref(m[1]);
        flush();
        out.push(href ? { type: 'link', href, children: [{ type: 'text', text: m[1] }] } : { type: 'text', text: m[0] });
        i += m[0].length;
        continue;
      }
    }
    if (c === '[' || (c === '!' && text[i + 1] === '[')) {
      const image = c === '!';
      const link = readLink(text, image ? i + 1 : i);
      if (link) {
        flush();
        const label = image ? [{ type: 'text' as const, text: `image: ${link.label || link.url}` }] : parseInline(link.label);
        const href = safeHref(link.url);
        if (href) out.push({ type: 'link', href, children: label });
        else out.push(...label);
        i = link.end;
        continue;
      }
    }
    buffer += c;
    i++;
  }
  flush();
  return out;
}

function findEmphasisEnd(text: string, from: number, marker: string): number {
  for (let j = from; j < text.length; j++) {
    if (text[j] === '\\') {
      j++;
      continue;
    }
    if (text[j] === '`') {
      const close = text.indexOf('`', j + 1);
      if (close > j) j = close;
      continue;
    }
    if (text[j] === marker && text[j - 1] !== ' ' && text[j + 1] !== marker) {
      if (marker === '_' && /\w/.test(text[j + 1] ?? '')) continue;
      return j;
    }
  }
  return -1;
}

/** `[label](url "title")` starting at `start` (the `[`). */
function readLink(text: string, start: number): { label: string; url: string; end: number } | undefined {
  let depth = 0;
  let j = start;
  for (; j < text.length; j++) {
    if (text[j] === '\\') {
      j++;
      continue;
    }
    if (text[j] === '[') depth++;
    else if (text[j] === ']' && --depth === 0) break;
  }
  if (j >= text.length || text[j + 1] !== '(') return undefined;
  // URLs may contain balanced parentheses (Wikipedia links).
  let close = -1;
  for (let k = j + 2, parens = 0; k < text.length; k++) {
    if (text[k] === '(') parens++;
    else if (text[k] === ')' && parens-- === 0) {
      close = k;
      break;
    }
  }
  if (close < 0) return undefined;
  const target = text.slice(j + 2, close).trim();
  const url = target.replace(/\s+"[^"]*"$/, '').replace(/^<(.*)>$/, '$1');
  return { label: text.slice(start + 1, j), url, end: close + 1 };
}
