import {
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
import { ConfigError, type ConfigIssue } from './errors';
import { IssueList, type LocatedIssue } from './issues';
import { childPath, parentPath } from './paths';
import { readConfig } from './read-config';
import type { MergeConfig } from './types';
import { collectConfigIssues } from './validate';
import { pyYamlTags } from './yaml-schema';

export interface ParsedMergeConfig {
  config: MergeConfig;
  /** Things mergekit would accept but that probably are not what was meant (unknown keys, ignored parameters…). */
  warnings: ConfigIssue[];
}

/**
 * Parses and validates a mergekit YAML config. Throws a ConfigError listing every error found, each
 * with its YAML path, line and column.
 *
 * The YAML is read as YAML 1.1, like mergekit's PyYAML (`yes`/`no`/`on`/`off` are booleans, `0777` is
 * octal, anchors and `<<` merge keys work), except that dates stay strings and exponents without a
 * dot (`1e-5`) are numbers (see yaml-schema.ts).
 */
export function parseMergeConfig(yamlText: string, file?: string): ParsedMergeConfig {
  const text = yamlText.startsWith('\uFEFF') ? yamlText.slice(1) : yamlText;
  const lineCounter = new LineCounter();
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
  const fail = (issues: ConfigIssue[]): never => {
    throw new ConfigError(issues, file, issues.filter((i) => i.severity === 'warning'));
  };

  if (!Array.isArray(docs) || docs.length === 0) {
    fail([{ path: '', message: 'the config is empty: it needs at least merge_method and models (or slices)', severity: 'error', line: 1, column: 1 }]);
  }
  const documents = docs as Document.Parsed[];
  const syntax: ConfigIssue[] = [];
  const extraDocuments: ConfigIssue[] = [];
  if (documents.length > 1) {
    extraDocuments.push({
      path: '',
      message: `the file holds ${documents.length} YAML documents (separated by ---), but a merge config is a single document`,
      severity: 'error',
      ...pos(documents[1].range[0]),
    });
  }
  for (const doc of documents) {
    for (const error of doc.errors) {
      syntax.push({ path: '', message: `YAML syntax error: ${error.message}`, severity: 'error', ...pos(error.pos[0]) });
    }
  }
  const yamlWarnings: ConfigIssue[] = documents[0].warnings.map((w) => ({
    path: '',
    message: `YAML: ${w.message}`,
    severity: 'warning' as const,
    ...pos(w.pos[0]),
  }));
  if (syntax.length > 0) fail([...extraDocuments, ...syntax, ...yamlWarnings]);

  const doc = documents[0];
  const positions = new Map<string, { key?: number; value: number }>();
  indexPositions(doc, doc.contents, '', positions, 0);
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 1000 });
  } catch (error) {
    fail([{ path: '', message: `YAML error: ${(error as Error).message}`, severity: 'error', line: 1, column: 1 }]);
  }

  const issues = new IssueList();
  const read = readConfig(root, issues);
  const readErrorPaths = new Set(issues.issues.filter((i) => i.severity === 'error').map((i) => i.path));
  const checks = collectConfigIssues(read.config, {
    methodName: read.methodNamed,
    methodRules: read.methodNamed && read.layoutReadable,
  });
  // A value that could not be read was reported already; the cross-key checks would only repeat it.
  issues.add(checks.filter((i) => !(i.severity === 'error' && readErrorPaths.has(i.path))));

  const located = [...extraDocuments, ...issues.issues.map((issue) => locate(issue, positions, pos))];
  located.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0));
  const warnings = [...yamlWarnings, ...located.filter((i) => i.severity === 'warning')];
  if (located.some((i) => i.severity === 'error')) {
    throw new ConfigError(located.filter((i) => i.severity === 'error'), file, warnings);
  }
  return { config: read.config, warnings };
}

/** Adds line/column: the node at the issue's path, else the nearest ancestor that exists. */
function locate(
  issue: LocatedIssue,
  positions: Map<string, { key?: number; value: number }>,
  pos: (offset: number) => { line: number; column: number },
): ConfigIssue {
  const { target, ...plain } = issue;
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
): void {
  if (!node || depth > 64) return;
  let target: unknown = node;
  if (isAlias(node)) target = node.resolve(doc);
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
      indexPositions(doc, value, keyPath, positions, depth + 1);
    }
    // `<<: *anchor` keys: the anchor's pairs appear under this path unless set explicitly.
    for (const source of merged) {
      const sources = isSeq(source) ? source.items : [source];
      for (const item of sources) {
        const resolved = isAlias(item) ? item.resolve(doc) : item;
        if (!isMap(resolved)) continue;
        for (const pair of resolved.items) {
          if (!isScalar(pair.key)) continue;
          const keyPath = childPath(path, String(pair.key.value));
          if (positions.has(keyPath)) continue;
          const value = pair.value as YamlNode | null;
          const offset = value?.range?.[0] ?? pair.key.range?.[0];
          if (offset !== undefined) positions.set(keyPath, { value: offset });
          indexPositions(doc, value, keyPath, positions, depth + 1);
        }
      }
    }
  } else if (isSeq(target)) {
    target.items.forEach((item, i) => indexPositions(doc, item as YamlNode, childPath(path, i), positions, depth + 1));
  }
}
