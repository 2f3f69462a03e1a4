import { ConfigError } from './errors';
import { IssueList, describe, isMapping } from './issues';
import { childPath } from './paths';
import { didYouMean } from './suggest';
import type { ModelReference } from './types';
import { untrustedText as quoted } from '../storage';

/**
 * Model references (docs/config.md §2): `path[@revision][+lora[@revision]]`, or the dict form
 * `{model: {path, revision?}, lora?: {path, revision?}, override_architecture?}`.
 */

const DICT_KEYS = ['model', 'lora', 'override_architecture'];
const PATH_KEYS = ['path', 'revision'];

/**
 * Parses a model reference. Throws a ConfigError listing every problem (paths under `path`).
 * Unknown keys of the dict form are ignored, as in mergekit (`parseMergeConfig` warns about them).
 */
export function parseModelReference(value: unknown, path = ''): ModelReference {
  const issues = new IssueList();
  const ref = readModelReference(value, path, issues);
  if (issues.hasErrors || ref === undefined) throw new ConfigError(issues.issues.filter((i) => i.severity === 'error'));
  return ref;
}

/** Back to the string form. `override_architecture` has no string form and is left out. */
export function formatModelReference(ref: ModelReference): string {
  const model = ref.revision !== undefined ? `${ref.path}@${ref.revision}` : ref.path;
  if (!ref.lora) return model;
  const lora = ref.lora.revision !== undefined ? `${ref.lora.path}@${ref.lora.revision}` : ref.lora.path;
  return `${model}+${lora}`;
}

/** Two references name the same model when their string forms are equal (as the planner compares them). */
export function sameModel(a: ModelReference, b: ModelReference): boolean {
  return formatModelReference(a) === formatModelReference(b);
}

/**
 * First path segments that are pages of the Hub (`huggingface.co/models`, `/datasets`…), so no
 * account or organisation can have them: `models/ft_a` is a folder on disk, not a repo.
 */
const HUB_RESERVED_NAMESPACES = new Set(['models', 'datasets', 'spaces', 'docs', 'api', 'settings', 'organizations', 'new', 'login', 'join', 'blog', 'papers', 'collections']);

/** A namespace or repo name as the Hub allows it (≤ 96 characters, no `--` or `..`). */
const HUB_NAME_PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$/;

/**
 * Whether a model path (without `@revision`) names a Hub repo or a local folder, where nothing
 * can look at the disk first (the app; docs/config.md §2). Only `namespace/name` with Hub-valid
 * parts is a Hub id; a leading `.`, `/` or `~`, a drive letter (`C:\x`, `C:/x`), a backslash, more or
 * fewer than one `/`, or a namespace that is a page of the Hub (`models/x`) make it a local folder.
 */
export function modelPathKind(path: string): 'hub' | 'local' {
  if (/^[./~\\]/.test(path) || path.includes('\\') || /^[A-Za-z]:/.test(path)) return 'local';
  const parts = path.split('/');
  if (parts.length !== 2) return 'local';
  const [namespace, name] = parts;
  const valid = (part: string) => HUB_NAME_PART.test(part) && !part.includes('--') && !part.includes('..');
  if (!valid(namespace) || !valid(name)) return 'local';
  return HUB_RESERVED_NAMESPACES.has(namespace.toLowerCase()) ? 'local' : 'hub';
}

/** Reads a reference, reporting problems into `issues`; undefined when it cannot be read at all. */
export function readModelReference(value: unknown, path: string, issues: IssueList): ModelReference | undefined {
  if (typeof value === 'string') return readReferenceString(value, path, issues);
  if (isMapping(value)) return readReferenceDict(value, path, issues);
  issues.error(
    path,
    `a model reference must be a string like 'org/model' or 'org/model@revision', or a mapping {model: {path: …}}; got ${describe(value)}`,
  );
  return undefined;
}

function readReferenceString(text: string, path: string, issues: IssueList): ModelReference | undefined {
  const parts = text.split('+');
  if (parts.length > 2) {
    issues.error(path, `'${quoted(text, 80)}' has more than one '+': a model reference is path[@revision][+lora_path[@revision]]`);
    return undefined;
  }
  const model = readPathString(parts[0], text, path, issues, 'model path');
  const lora = parts.length === 2 ? readPathString(parts[1], text, path, issues, 'LoRA path') : undefined;
  if (!model || (parts.length === 2 && !lora)) return undefined;
  return lora ? { ...model, lora } : model;
}

function readPathString(
  part: string,
  whole: string,
  path: string,
  issues: IssueList,
  what: string,
): { path: string; revision?: string } | undefined {
  const pieces = part.split('@');
  if (pieces.length > 2) {
    issues.error(path, `the ${what} '${quoted(part, 80)}' in '${quoted(whole, 80)}' has more than one '@': write path@revision`);
    return undefined;
  }
  if (pieces[0] === '') {
    issues.error(path, `the ${what} in '${quoted(whole, 80)}' is empty`);
    return undefined;
  }
  if (pieces.length === 2) {
    if (pieces[1] === '') {
      issues.error(path, `the revision after '@' in '${quoted(whole, 80)}' is empty`);
      return undefined;
    }
    return { path: pieces[0], revision: pieces[1] };
  }
  return { path: pieces[0] };
}

function readReferenceDict(value: Record<string, unknown>, path: string, issues: IssueList): ModelReference | undefined {
  warnUnknownKeys(value, path, DICT_KEYS, issues, 'model reference');
  let ok = true;
  const modelPath = childPath(path, 'model');
  let model: { path: string; revision?: string } | undefined;
  if (value.model === undefined || value.model === null) {
    issues.error(modelPath, 'the dict form of a model reference needs `model: {path: …}`');
    ok = false;
  } else {
    model = readModelPath(value.model, modelPath, issues);
    ok &&= model !== undefined;
  }
  let lora: { path: string; revision?: string } | undefined;
  if (value.lora !== undefined && value.lora !== null) {
    lora = readModelPath(value.lora, childPath(path, 'lora'), issues);
    ok &&= lora !== undefined;
  }
  let override: string | undefined;
  const arch = value.override_architecture;
  if (arch !== undefined && arch !== null) {
    if (typeof arch === 'string' && arch !== '') override = arch;
    else {
      issues.error(childPath(path, 'override_architecture'), `override_architecture must be an architecture name like 'LlamaForCausalLM'; got ${describe(arch)}`);
      ok = false;
    }
  }
  if (!ok || !model) return undefined;
  const ref: ModelReference = { ...model };
  if (lora) ref.lora = lora;
  if (override !== undefined) ref.override_architecture = override;
  return ref;
}

function readModelPath(value: unknown, path: string, issues: IssueList): { path: string; revision?: string } | undefined {
  if (typeof value === 'string') return readPathString(value, value, path, issues, 'path');
  if (!isMapping(value)) {
    issues.error(path, `expected {path: …, revision?: …} or a string; got ${describe(value)}`);
    return undefined;
  }
  warnUnknownKeys(value, path, PATH_KEYS, issues, 'model path');
  let ok = true;
  const p = value.path;
  if (typeof p !== 'string' || p === '') {
    issues.error(childPath(path, 'path'), p === undefined ? 'path is required' : `path must be a non-empty string; got ${describe(p)}`);
    ok = false;
  }
  const revision = value.revision;
  if (revision !== undefined && revision !== null && (typeof revision !== 'string' || revision === '')) {
    issues.error(
      childPath(path, 'revision'),
      `revision must be a non-empty string (quote commit hashes made of digits); got ${describe(revision)}`,
    );
    ok = false;
  }
  if (!ok) return undefined;
  return typeof revision === 'string' ? { path: p as string, revision } : { path: p as string };
}

/**
 * Warns about each key mergekit would ignore, suggesting the known key it probably meant; `hint`
 * may explain a key that is known elsewhere (a parameter written outside `parameters:`…).
 */
export function warnUnknownKeys(
  value: Record<string, unknown>,
  path: string,
  known: readonly string[],
  issues: IssueList,
  what: string,
  hint?: (key: string) => string | undefined,
): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const explained = hint?.(key);
    issues.warning(
      childPath(path, key),
      `unknown key '${quoted(key, 80)}' in ${what} is ignored${explained ? `: ${explained}` : didYouMean(key, known)}`,
      'key',
    );
  }
}
