import alpaca from './chat-templates/alpaca.jinja?raw';
import chatml from './chat-templates/chatml.jinja?raw';
import exaone from './chat-templates/exaone.jinja?raw';
import llama3 from './chat-templates/llama3.jinja?raw';
import mistral from './chat-templates/mistral.jinja?raw';
import { TokenizerError, type TokenizerFiles } from './hf-tokenizer';

/**
 * `chat_template:` (docs/tokenizers.md §5). The built-in templates are mergekit's own Jinja files,
 * copied verbatim (see chat-templates/SOURCE.md).
 */
export const BUILTIN_CHAT_TEMPLATES: Readonly<Record<string, string>> = { alpaca, chatml, exaone, llama3, mistral };

/**
 * A tokenizer's own chat template as transformers loads it: `chat_template.jinja` if present, else
 * tokenizer_config.json's `chat_template` (a list of named templates gives its "default" one).
 */
export function ownChatTemplate(files: TokenizerFiles): string | null {
  if (files.chatTemplateJinja !== null) return files.chatTemplateJinja;
  if (files.tokenizerConfig === null) return null;
  let config: unknown;
  try {
    config = JSON.parse(files.tokenizerConfig);
  } catch {
    return null;
  }
  if (typeof config !== 'object' || config === null) return null;
  const template = (config as Record<string, unknown>).chat_template;
  if (typeof template === 'string') return template;
  if (Array.isArray(template)) {
    const named = template.find((t) => typeof t === 'object' && t !== null && (t as Record<string, unknown>).name === 'default');
    const text = named ? (named as Record<string, unknown>).template : undefined;
    return typeof text === 'string' ? text : null;
  }
  if (typeof template === 'object' && template !== null) {
    const text = (template as Record<string, unknown>).default;
    return typeof text === 'string' ? text : null;
  }
  return null;
}

export interface ResolvedChatTemplate {
  /** The template text to write, or null to keep the tokenizer's own (`auto` found none). */
  readonly template: string | null;
  /** What was chosen, for the plan: `chatml (built-in)`, `auto: from model X`, `literal`. */
  readonly description: string;
}

/**
 * The template a `chat_template:` setting stands for. `auto` takes the most common non-empty
 * template among the models (whitespace-trimmed, ties go to the first model, as with Python's
 * `Counter.most_common`); `templates` are the models' own templates in config order.
 */
export function resolveChatTemplate(setting: string, templates: readonly { readonly model: string; readonly template: string | null }[]): ResolvedChatTemplate {
  if (setting === 'auto') {
    const counts = new Map<string, { count: number; model: string }>();
    for (const { model, template } of templates) {
      const text = template?.trim();
      if (!text) continue;
      const entry = counts.get(text);
      if (entry) entry.count++;
      else counts.set(text, { count: 1, model });
    }
    let best: [string, { count: number; model: string }] | null = null;
    for (const entry of counts) if (!best || entry[1].count > best[1].count) best = entry;
    if (!best) return { template: null, description: 'auto: none of the models has a chat template' };
    return { template: best[0], description: `auto: the template of ${best[1].model}` };
  }
  if (Object.prototype.hasOwnProperty.call(BUILTIN_CHAT_TEMPLATES, setting)) {
    return { template: BUILTIN_CHAT_TEMPLATES[setting], description: `${setting} (built-in)` };
  }
  if (setting.length < 20 || !setting.includes('{')) throw new TokenizerError(`Invalid chat template: ${setting}`);
  return { template: setting, description: 'a literal Jinja template' };
}
