import { formatModelReference } from '../config';
import type { MergeConfig, TokenSource } from '../config/types';
import {
  alignEmbedding,
  buildOutputVocabulary,
  ownChatTemplate,
  parseTokenizer,
  resolveChatTemplate,
  TokenizerError,
  withChatTemplate,
  writeTokenizerFiles,
  type AlignmentResult,
  type HfTokenizer,
  type OutputVocabulary,
  type ResolvedChatTemplate,
  type TokenEmbeddingRule,
  type TokenEmbeddingSource,
  type TokenizerFiles,
  type VocabularySource,
} from '../tokenizer';
import type { ModelMetadata } from './model-metadata';
import { PlanError } from './plan-error';
import { tokenizerFilesToCopy } from './tokenizer-files';
import type { FileToCopy, TokenizerSummary } from './types';

/**
 * What a merge does with tokenizers (docs/tokenizers.md §1–6): builds the output
 * vocabulary when `tokenizer_source` / `tokenizer` is set, resolves `chat_template`, and lists the
 * tokenizer files to write or copy. Errors are TokenizerErrors whose `yamlPath` is set.
 */
export interface TokenizerPlan {
  /** The output vocabulary when one is built; embeddings are then aligned to it. */
  readonly vocabulary: OutputVocabulary | null;
  /** `tokenizer.tokens`, keyed by token string, with model references as model keys. */
  readonly rules: ReadonlyMap<string, TokenEmbeddingRule>;
  readonly textFiles: Record<string, string>;
  readonly copyFiles: FileToCopy[];
  readonly summary?: TokenizerSummary;
}

/** A tokenizer problem located in the config. */
export class TokenizerConfigError extends TokenizerError {
  constructor(
    message: string,
    readonly yamlPath: string,
  ) {
    super(message);
    this.name = 'TokenizerConfigError';
  }
}

function filesOf(meta: ModelMetadata): TokenizerFiles {
  if (!meta.tokenizerFiles) {
    throw new Error(`internal: the tokenizer files of ${meta.key} were not loaded (loadModelMetadata with {tokenizer: true})`);
  }
  return meta.tokenizerFiles;
}

function located<T>(yamlPath: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof TokenizerError && !(error instanceof TokenizerConfigError)) throw new TokenizerConfigError(error.message, yamlPath);
    throw error;
  }
}

function tokenRules(config: MergeConfig, known: ReadonlySet<string>): Map<string, TokenEmbeddingRule> {
  const rules = new Map<string, TokenEmbeddingRule>();
  for (const [token, entry] of Object.entries(config.tokenizer?.tokens ?? {})) {
    const path = `tokenizer.tokens[${JSON.stringify(token)}]`;
    const modelKey = (source: Exclude<TokenSource, { kind: 'zero' }>): string => {
      const key = formatModelReference(source.model);
      if (!known.has(key)) throw new TokenizerConfigError(`model ${key} is not one of the merged models`, `${path}.source`);
      return key;
    };
    let source: TokenEmbeddingSource | undefined;
    const s = entry.source;
    if (s?.kind === 'zero') source = { kind: 'zero' };
    else if (s?.kind === 'model') source = { kind: 'model', model: modelKey(s) };
    else if (s?.kind === 'model_token') source = { kind: 'model_token', model: modelKey(s), token_id: s.token_id, token: s.token };
    rules.set(token, { source, force: entry.force });
  }
  return rules;
}

/** Plans the tokenizer side of a merge. `vocabSizeOf` reads a model's config vocab size. */
export function planTokenizer(
  config: MergeConfig,
  metas: readonly ModelMetadata[],
  donor: ModelMetadata,
  vocabSizeOf: (meta: ModelMetadata) => number | undefined,
  copyTokenizer: boolean,
  warnings: string[],
): TokenizerPlan {
  const rawSource = config.tokenizer?.source ?? config.tokenizer_source;
  const sourcePath = config.tokenizer ? 'tokenizer.source' : 'tokenizer_source';
  const known = new Set(metas.map((m) => m.key));
  const rules = tokenRules(config, known);

  let chat: ResolvedChatTemplate | null = null;
  if (config.chat_template !== undefined) {
    const setting = config.chat_template;
    chat = located('chat_template', () =>
      resolveChatTemplate(setting, setting === 'auto' ? metas.map((m) => ({ model: m.key, template: ownChatTemplate(filesOf(m)) })) : []),
    );
  }
  const template = chat?.template ?? null;

  if (rawSource === undefined) {
    // No tokenizer built: the donor's files are copied, with the chat template applied.
    const textFiles: Record<string, string> = {};
    let copyFiles: FileToCopy[] = [];
    if (copyTokenizer) {
      copyFiles = tokenizerFilesToCopy(donor);
      if (copyFiles.length === 0) {
        warnings.push(`${donor.key} has no tokenizer files to copy (tokenizer_config.json plus tokenizer.json or tokenizer.model); the output has no tokenizer.`);
      } else if (template !== null) {
        const tokenizerConfig = filesOf(donor).tokenizerConfig;
        if (tokenizerConfig === null) throw new Error(`internal: ${donor.key} lists tokenizer_config.json but it could not be read`);
        textFiles['tokenizer_config.json'] = located('chat_template', () => {
          try {
            return withChatTemplate(tokenizerConfig, template);
          } catch (error) {
            throw new TokenizerError(`tokenizer_config.json of ${donor.key} is not valid JSON: ${(error as Error).message}`);
          }
        });
        // The template goes into tokenizer_config.json; a chat_template.jinja would override it.
        copyFiles = copyFiles.filter((f) => f.file !== 'tokenizer_config.json' && f.file !== 'chat_template.jinja');
      }
    } else if (config.chat_template !== undefined) {
      warnings.push('chat_template is set but the tokenizer is not copied (--no-copy-tokenizer): the chat template is not saved.');
    }
    const summary: TokenizerSummary | undefined =
      copyFiles.length > 0 ? { source: `copied from ${donor.key}`, ...(chat ? { chatTemplate: chat.description } : {}) } : undefined;
    return { vocabulary: null, rules, textFiles, copyFiles, summary };
  }

  // A tokenizer is built: every model's tokenizer is read.
  let source: VocabularySource;
  if (rawSource === 'union' || rawSource === 'base') source = rawSource;
  else {
    const key = formatModelReference(rawSource);
    if (!known.has(key)) {
      throw new TokenizerConfigError(`the tokenizer source ${key} is not one of the merged models; add it to the merge or use union or base`, sourcePath);
    }
    source = { model: key };
  }
  const vocabulary = located(sourcePath, () => {
    const models = metas.map((m) => {
      const files = filesOf(m);
      const tokenizer: HfTokenizer | null = files.tokenizerJson === null ? null : parseTokenizer(files, m.key);
      return { key: m.key, tokenizer, vocabSize: vocabSizeOf(m) };
    });
    return buildOutputVocabulary({
      base: donor.key,
      models,
      source,
      addTokens: [...rules.keys()],
      padToMultipleOf: config.tokenizer?.pad_to_multiple_of,
    });
  });
  for (const w of vocabulary.warnings) warnings.push(w);

  const sourceMeta = metas.find((m) => m.key === vocabulary.sourceModel)!;
  const textFiles = writeTokenizerFiles(vocabulary.tokenizer, template);
  const copyFiles: FileToCopy[] = [];
  if (template === null && filesOf(sourceMeta).chatTemplateJinja !== null) copyFiles.push({ model: sourceMeta.key, file: 'chat_template.jinja' });
  if (copyTokenizer && donor.files.includes('generation_config.json')) copyFiles.push({ model: donor.key, file: 'generation_config.json' });
  const describe = source === 'union' ? 'union' : source === 'base' ? `base (${donor.key})` : source.model;
  return {
    vocabulary,
    rules,
    textFiles,
    copyFiles,
    summary: { source: describe, tokens: vocabulary.size, rows: vocabulary.paddedSize, ...(chat ? { chatTemplate: chat.description } : {}) },
  };
}

/** Aligns one embedding tensor's inputs to the output vocabulary (errors located at `tokenizer`). */
export function planEmbeddingAlignment(
  plan: TokenizerPlan,
  inputs: readonly { readonly model: string; readonly rows: number }[],
  base: number,
  yamlPath: string,
): AlignmentResult {
  if (!plan.vocabulary) throw new Error('internal: no output vocabulary');
  const vocabulary = plan.vocabulary;
  return located(yamlPath, () => alignEmbedding(vocabulary, inputs, base, plan.rules));
}

/** Tokenizer errors become PlanErrors at their YAML path. */
export function asPlanErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof TokenizerConfigError) throw new PlanError(error.message, error.yamlPath);
    throw error;
  }
}
