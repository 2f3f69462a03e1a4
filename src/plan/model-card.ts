import type { MergeMethod } from '../methods';

export interface ModelCardInput {
  readonly title: string;
  readonly method: MergeMethod;
  /** Base model key, if the merge has one (not mentioned for slerp, like mergekit). */
  readonly base?: string;
  /** Every referenced model in config order, with its Hub repo id when it comes from the Hub. */
  readonly models: readonly { key: string; hubRepo?: string }[];
  readonly configYaml: string;
  /** Recorded for methods that draw random numbers. */
  readonly randomSeed?: number;
  /** The Hub the models came from, for their links (default https://huggingface.co). */
  readonly hubUrl?: string;
}

const DEFAULT_HUB_URL = 'https://huggingface.co';

function link(model: { key: string; hubRepo?: string }, hubUrl: string): string {
  return model.hubRepo ? `[${model.key}](${hubUrl}/${model.hubRepo})` : model.key;
}

/** YAML scalars in the front matter: plain when safe, double-quoted (JSON escaping) otherwise. */
function yamlScalar(s: string): string {
  return /^[A-Za-z0-9._/-]+$/.test(s) && !/^[-.]/.test(s) ? s : JSON.stringify(s);
}

/** The output README.md, in mergekit's model-card layout (docs/output.md §4). */
export function renderModelCard(input: ModelCardInput): string {
  const hubUrl = (input.hubUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
  const hubModels = input.models.filter((m) => m.hubRepo);
  const front = ['---'];
  if (hubModels.length > 0) front.push('base_model:', ...hubModels.map((m) => `- ${yamlScalar(m.hubRepo!)}`));
  front.push('library_name: transformers', 'tags:', '- merge', '- mergekit', '- alloy', '---');

  const methodName = input.method.paperUrl ? `[${input.method.prettyName}](${input.method.paperUrl})` : input.method.prettyName;
  const baseModel = input.base ? input.models.find((m) => m.key === input.base) : undefined;
  const usingBase = baseModel && input.method.name !== 'slerp' ? ` using ${link(baseModel, hubUrl)} as a base` : '';
  const merged = input.models.filter((m) => input.method.name === 'slerp' || m.key !== input.base);
  const seed =
    input.randomSeed !== undefined ? `\nRandom numbers were drawn with seed ${input.randomSeed} (\`--random-seed ${input.randomSeed}\` reproduces this merge).\n` : '';

  return [
    front.join('\n'),
    `# ${input.title}`,
    '',
    'This is a merge of pre-trained language models created with Alloy, ' +
      'which runs [mergekit](https://github.com/arcee-ai/mergekit) configurations on your own machine.',
    '',
    '## Merge Details',
    '### Merge Method',
    '',
    `This model was merged using the ${methodName} merge method${usingBase}.`,
    seed,
    '### Models Merged',
    '',
    'The following models were included in the merge:',
    ...merged.map((m) => `* ${link(m, hubUrl)}`),
    '',
    '### Configuration',
    '',
    'The following YAML configuration was used to produce this model:',
    '',
    '```yaml',
    input.configYaml.trimEnd(),
    '```',
    '',
  ].join('\n');
}
