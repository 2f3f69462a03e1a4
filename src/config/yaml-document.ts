import {
  type Alias,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseAllDocuments,
  type Document,
  type Node as YamlNode,
  type ParsedNode,
} from 'yaml';
import type { ConfigIssue } from './errors';
import type { LocatedIssue } from './issues';
import { childPath, parentPath } from './paths';
import { checkYamlText, measureYamlDocument, YAML_LIMITS } from './yaml-limits';
import { pyYamlTags } from './yaml-schema';

/**
 * A config file's YAML text read into plain values, keeping where every node starts so that issues
 * found later (by YAML path) get a line and column. Shared by merge and mergekit-moe configs.
 *
 * The YAML is read as YAML 1.1, like mergekit's PyYAML (`yes`/`no`/`on`/`off` are booleans, `0777` is
 * octal, anchors and `<<` merge keys work), except that dates stay strings and exponents without a
 * dot (`1e-5`) are numbers (see yaml-schema.ts; PyYAML leaves them strings, which pydantic then
 * converts to the same number).
 */
export interface YamlDocument {
  /** The document as plain values (`undefined` when `readable` is false). */
  readonly root: unknown;
  /** False when the text has syntax errors (reported in `issues`) or could not be converted. */
  readonly readable: boolean;
  /** Syntax errors, a second document, and YAML warnings, each with its line and column. */
  readonly issues: readonly ConfigIssue[];
  /** Adds line/column: the node at the issue's path, else the nearest ancestor that exists. */
  locate(issue: LocatedIssue): ConfigIssue;
}

/**
 * The one entry point that reads config YAML (CLI, app, validate, merge, plan). Bounded: the text's
 * size and nesting are checked before parsing, and the document's size with aliases expanded
 * before anything walks it (yaml-limits.ts), so a hostile config is refused in milliseconds.
 */
export function readYamlDocument(yamlText: string): YamlDocument {
  const text = yamlText.startsWith('\uFEFF') ? yamlText.slice(1) : yamlText;
  const lineCounter = new LineCounter();
  const refuse = (offset: number, message: string, known?: LineCounter): YamlDocument => {
    const where = known ? known.linePos(offset) : linePosOf(text, offset);
    const issue: ConfigIssue = { path: '', message, severity: 'error', line: where.line, column: where.col };
    return { root: undefined, readable: false, issues: [issue], locate: (i) => withPosition(i, issue) };
  };
  const textBreach = checkYamlText(text);
  if (textBreach) return refuse(textBreach.offset, textBreach.message);
  const docs = parseAllDocuments(text, {
    lineCounter,
    version: '1.1',
    merge: true,
    prettyErrors: false,
    uniqueKeys: true,
    customTags: pyYamlTags,
  });
  const pos = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const positions = new Map<string, { key?: number; value: number }>();
  const locate = (issue: LocatedIssue): ConfigIssue => locateIn(issue, positions, pos);

  if (!Array.isArray(docs) || docs.length === 0) {
    // Empty text (or only comments): the same as a document holding null.
    return { root: null, readable: true, issues: [], locate };
  }
  const documents = docs as Document.Parsed[];
  const issues: ConfigIssue[] = [];
  if (documents.length > 1) {
    issues.push({
      path: '',
      message: `the file holds ${documents.length} YAML documents (separated by ---), but a config is a single document (mergekit reads it with yaml.safe_load)`,
      severity: 'error',
      ...pos(documents[1].range[0]),
    });
  }
  let syntaxErrors = false;
  for (const doc of documents) {
    for (const error of doc.errors) {
      syntaxErrors = true;
      issues.push({ path: '', message: `YAML syntax error: ${error.message}`, severity: 'error', ...pos(error.pos[0]) });
    }
  }
  for (const warning of documents[0].warnings) {
    issues.push({ path: '', message: `YAML: ${warning.message}`, severity: 'warning', ...pos(warning.pos[0]) });
  }
  if (syntaxErrors) return { root: undefined, readable: false, issues, locate };

  const doc = documents[0];
  const measured = measureYamlDocument(doc);
  if (measured.breach) return refuse(measured.breach.offset, measured.breach.message, lineCounter);
  indexPositions(doc, doc.contents, '', positions, 0, measured.aliasTargets);
  try {
    // The expansion is bounded above, and yaml's own alias count rescans the document for every
    // alias (quadratic), so it is off.
    return { root: doc.toJS({ maxAliasCount: -1 }), readable: true, issues, locate };
  } catch (error) {
    issues.push({ path: '', message: `YAML error: ${(error as Error).message}`, severity: 'error', line: 1, column: 1 });
    return { root: undefined, readable: false, issues, locate };
  }
}

/** Line and column of `offset` without a parse (for text refused before parsing). */
function linePosOf(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: offset - start + 1 };
}

function withPosition(issue: LocatedIssue, at: ConfigIssue): ConfigIssue {
  const { target: _target, ...plain } = issue;
  return plain.line !== undefined ? plain : { ...plain, line: at.line, column: at.column };
}

export { YAML_LIMITS };

function locateIn(
  issue: LocatedIssue,
  positions: Map<string, { key?: number; value: number }>,
  pos: (offset: number) => { line: number; column: number },
): ConfigIssue {
  const { target, ...plain } = issue;
  if (plain.line !== undefined) return plain;
  let path: string | undefined = issue.path;
  while (path !== undefined) {
    const found = positions.get(path);
    if (found) {
      const offset = path === issue.path && target === 'key' && found.key !== undefined ? found.key : found.value;
      return { ...plain, ...pos(offset) };
    }
    path = parentPath(path);
  }
  return { ...plain, line: 1, column: 1 };
}

/** Records where every node of the document starts, under the same paths the issues use. */
function indexPositions(
  doc: Document.Parsed,
  node: ParsedNode | YamlNode | null | undefined,
  path: string,
  positions: Map<string, { key?: number; value: number }>,
  depth: number,
  aliasTargets: ReadonlyMap<Alias, YamlNode>,
): void {
  if (!node || depth > YAML_LIMITS.maxDepth) return;
  let target: unknown = node;
  // Not node.resolve(doc): that scans the whole document for every alias.
  if (isAlias(node)) target = aliasTargets.get(node);
  if (!positions.has(path) && node.range) positions.set(path, { value: node.range[0] });
  if (isMap(target)) {
    const merged: unknown[] = [];
    for (const pair of target.items) {
      const key = pair.key;
      if (isScalar(key) && (typeof key.value === 'symbol' || key.value === '<<')) {
        merged.push(pair.value);
        continue;
      }
      if (!isScalar(key)) continue;
      const keyPath = childPath(path, String(key.value));
      const value = pair.value as YamlNode | null;
      const keyOffset = key.range?.[0];
      const valueOffset = value?.range?.[0] ?? keyOffset;
      if (valueOffset === undefined) continue;
      positions.set(keyPath, keyOffset === undefined ? { value: valueOffset } : { key: keyOffset, value: valueOffset });
      indexPositions(doc, value, keyPath, positions, depth + 1, aliasTargets);
    }
    // `<<: *anchor` keys: the anchor's pairs appear under this path unless set explicitly.
    for (const source of merged) {
      const sources = isSeq(source) ? source.items : [source];
      for (const item of sources) {
        const resolved = isAlias(item) ? aliasTargets.get(item) : item;
        if (!isMap(resolved)) continue;
        for (const pair of resolved.items) {
          if (!isScalar(pair.key)) continue;
          const keyPath = childPath(path, String(pair.key.value));
          if (positions.has(keyPath)) continue;
          const value = pair.value as YamlNode | null;
          const offset = value?.range?.[0] ?? pair.key.range?.[0];
          if (offset !== undefined) positions.set(keyPath, { value: offset });
          indexPositions(doc, value, keyPath, positions, depth + 1, aliasTargets);
        }
      }
    }
  } else if (isSeq(target)) {
    target.items.forEach((item, i) => indexPositions(doc, item as YamlNode, childPath(path, i), positions, depth + 1, aliasTargets));
  }
}
