import { isAlias, isMap, isPair, isScalar, isSeq, type Alias, type Document, type Node as YamlNode } from 'yaml';

/**
 * Bounds on a config's YAML, checked before anything walks it. A mergekit config is a few kB with a
 * nesting depth under 10; without bounds a 446-byte "billion laughs" document (aliases of aliases)
 * expands to billions of values, and deep nesting makes the parser itself slow. Each limit is far
 * above any real config.
 */
export const YAML_LIMITS = {
  /** Characters of YAML text (the `yaml` parser reads about 100 kB a second on a slow machine). */
  maxChars: 256 * 1024,
  /** Nesting of lists and mappings, with aliases replaced by what they refer to. */
  maxDepth: 64,
  /** Alias nodes (`*name`) in the document. */
  maxAliases: 1_000,
  /** Values (scalars, lists, mappings, keys) once every alias is replaced by what it refers to. */
  maxNodes: 100_000,
} as const;

/** A limit broken, at a character offset of the text. */
export interface YamlLimitBreach {
  readonly offset: number;
  readonly message: string;
}

const FIX = 'Alloy refuses such a config; write a plain config (a mergekit config is a few kB)';

/**
 * Size and a cheap upper estimate of the nesting depth, from the text alone: the parser slows
 * down on deeply nested input, so this runs first. The estimate counts indentation levels,
 * compact `- - x` items and open flow brackets outside quotes, comments and block scalars; it may
 * overestimate, so it allows twice the depth that the exact check after parsing enforces.
 */
export function checkYamlText(text: string): YamlLimitBreach | undefined {
  if (text.length > YAML_LIMITS.maxChars) {
    return {
      offset: 0,
      message: `the file is ${text.length} characters long, more than the ${YAML_LIMITS.maxChars} a config may have: ${FIX}`,
    };
  }
  return scanText(text, YAML_LIMITS.maxDepth * 2);
}

function depthMessage(): string {
  return `the YAML nests lists and mappings more than ${YAML_LIMITS.maxDepth} levels deep: ${FIX}`;
}

function aliasMessage(): string {
  return `the YAML uses more than ${YAML_LIMITS.maxAliases} aliases (*name): ${FIX}`;
}

/**
 * Where the estimated depth first passes `limit`, or the aliases (`*name` where a value starts)
 * pass their limit (resolving many aliases is slow in the parser too). Linear in the text.
 */
function scanText(text: string, limit: number): YamlLimitBreach | undefined {
  let aliases = 0;
  const indents: number[] = [];
  let flow = 0;
  let quote: '"' | "'" | null = null;
  let blockScalarParent = -1;
  let lineStart = 0;
  while (lineStart <= text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd < 0) lineEnd = text.length;
    let i = lineStart;
    while (i < lineEnd && text[i] === ' ') i++;
    const indent = i - lineStart;
    const blank = i >= lineEnd || text[i] === '\r';
    if (blockScalarParent >= 0) {
      if (blank || indent > blockScalarParent) {
        lineStart = lineEnd + 1;
        continue;
      }
      blockScalarParent = -1;
    }
    let depth = flow;
    if (quote === null && flow === 0 && !blank && text[i] !== '#') {
      while (indents.length > 0 && indents[indents.length - 1] >= indent) indents.pop();
      indents.push(indent);
      // `- - - x` opens one list per dash on a single line.
      while ((text[i] === '-' || text[i] === '?') && (i + 1 >= lineEnd || text[i + 1] === ' ')) {
        indents.push(indent);
        i += 2;
        while (i < lineEnd && text[i] === ' ') i++;
      }
      depth = indents.length;
    }
    let lastSignificant = quote === null && flow === 0 ? ' ' : '';
    for (; i < lineEnd; i++) {
      const c = text[i];
      if (quote !== null) {
        if (quote === '"' && c === '\\') i++;
        else if (c === quote) {
          if (quote === "'" && text[i + 1] === "'") i++;
          else quote = null;
        }
        continue;
      }
      if (c === '#' && (i === lineStart || text[i - 1] === ' ' || text[i - 1] === '\t')) break;
      // A quote or bracket starts a value only where one can start; elsewhere (`it's`, `a[0]`) it
      // is part of a plain scalar. Inside brackets every bracket counts.
      const atValueStart = lastSignificant === ' ' || ':,[{-?'.includes(lastSignificant);
      if ((c === '"' || c === "'") && (atValueStart || flow > 0)) quote = c;
      else if ((c === '[' || c === '{') && (atValueStart || flow > 0)) {
        flow++;
        if (indents.length + flow > limit) return { offset: i, message: depthMessage() };
      } else if (c === '*' && (atValueStart || flow > 0) && i + 1 < lineEnd && text[i + 1] !== ' ') {
        if (++aliases > YAML_LIMITS.maxAliases) return { offset: i, message: aliasMessage() };
      } else if ((c === ']' || c === '}') && flow > 0) flow--;
      if (c !== ' ' && c !== '\t') lastSignificant = c;
      else if (flow === 0 && ':-?'.includes(lastSignificant)) lastSignificant = ' ';
    }
    if (depth > limit) return { offset: lineStart, message: depthMessage() };
    if (quote === null && flow === 0 && /(?:^|[\s:-])[|>][0-9+-]*\s*(?:#.*)?$/.test(text.slice(lineStart, lineEnd).replace(/\r$/, ''))) {
      blockScalarParent = indent;
    }
    lineStart = lineEnd + 1;
  }
  return undefined;
}

export interface MeasuredDocument {
  /** What each alias refers to (the last anchor of its name before it). */
  readonly aliasTargets: ReadonlyMap<Alias, YamlNode>;
  readonly breach?: YamlLimitBreach;
}

interface Frame {
  readonly node: YamlNode;
  readonly depth: number;
  readonly children: YamlNode[];
  next: number;
  size: number;
  height: number;
}

/**
 * The parsed document's real depth and size with aliases expanded, measured without expanding
 * anything: one iterative pass (no recursion, so no stack to overflow) that gives each node its
 * expanded size and height, an alias those of the node it refers to.
 */
export function measureYamlDocument(doc: Document.Parsed): MeasuredDocument {
  const aliasTargets = new Map<Alias, YamlNode>();
  const anchors = new Map<string, YamlNode>();
  const done = new Map<YamlNode, { size: number; height: number }>();
  const root = doc.contents as YamlNode | null;
  if (!root) return { aliasTargets };
  let aliases = 0;
  const at = (node: YamlNode) => node.range?.[0] ?? 0;
  const stack: Frame[] = [];
  const push = (node: YamlNode, depth: number): YamlLimitBreach | undefined => {
    if (depth > YAML_LIMITS.maxDepth) return { offset: at(node), message: depthMessage() };
    if (!isAlias(node) && node.anchor) anchors.set(node.anchor, node);
    stack.push({ node, depth, children: childrenOf(node), next: 0, size: 1, height: 0 });
    return undefined;
  };
  const first = push(root, 0);
  if (first) return { aliasTargets, breach: first };
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (frame.next < frame.children.length) {
      const child = frame.children[frame.next++];
      if (isAlias(child)) {
        aliases++;
        if (aliases > YAML_LIMITS.maxAliases) {
          return {
            aliasTargets,
            breach: { offset: at(child), message: aliasMessage() },
          };
        }
        const target = anchors.get(child.source);
        if (target === undefined) continue; // the parser reports an unknown anchor
        const measured = done.get(target);
        if (measured === undefined) {
          return { aliasTargets, breach: { offset: at(child), message: `alias *${child.source} refers to a list or mapping that contains it: ${FIX}` } };
        }
        aliasTargets.set(child, target);
        if (frame.depth + 1 + measured.height > YAML_LIMITS.maxDepth) return { aliasTargets, breach: { offset: at(child), message: depthMessage() } };
        frame.size += measured.size;
        frame.height = Math.max(frame.height, measured.height + 1);
      } else {
        const breach = push(child, frame.depth + 1);
        if (breach) return { aliasTargets, breach };
      }
      continue;
    }
    stack.pop();
    if (frame.size > YAML_LIMITS.maxNodes) {
      const aliased = aliases > 0 ? ' once its aliases (*name) are replaced by what they refer to' : '';
      return {
        aliasTargets,
        breach: { offset: at(frame.node), message: `the YAML holds more than ${YAML_LIMITS.maxNodes} values${aliased}: ${FIX}` },
      };
    }
    done.set(frame.node, { size: frame.size, height: frame.height });
    const parent = stack[stack.length - 1];
    if (parent) {
      parent.size += frame.size;
      parent.height = Math.max(parent.height, frame.height + 1);
    }
  }
  return { aliasTargets };
}

function childrenOf(node: YamlNode): YamlNode[] {
  if (!isMap(node) && !isSeq(node)) return [];
  const out: YamlNode[] = [];
  const add = (item: unknown) => {
    if (isScalar(item) || isMap(item) || isSeq(item) || isAlias(item)) out.push(item);
  };
  // Flow lists may hold single pairs (`[a: 1]`).
  for (const item of node.items as unknown[]) {
    if (isPair(item)) {
      add(item.key);
      add(item.value);
    } else add(item);
  }
  return out;
}
