import { isMapping } from './issues';

/** mergekit-yaml configs (`merge`) and mergekit-moe configs (`moe`: `experts:` and no `merge_method`). */
export type ConfigKind = 'merge' | 'moe';

/** Which tool a parsed config is for: a mapping with `experts` and no `merge_method` is a MoE config. */
export function detectConfigKind(root: unknown): ConfigKind {
  return isMapping(root) && root.experts !== undefined && root.merge_method === undefined ? 'moe' : 'merge';
}

/** The same guess from raw text, for text that is not valid YAML (top-level keys only). */
export function guessConfigKind(text: string): ConfigKind {
  return /^experts[ \t]*:/m.test(text) && !/^merge_method[ \t]*:/m.test(text) ? 'moe' : 'merge';
}
