import { describe, expect, it } from 'vitest';
import {
  alignEmbedding,
  BUILTIN_CHAT_TEMPLATES,
  buildOutputVocabulary,
  fullVocab,
  ownChatTemplate,
  parseTokenizer,
  resolveChatTemplate,
  stripTokenizer,
  TokenizerError,
  withChatTemplate,
  writeTokenizerFiles,
  type HfTokenizer,
  type TokenizerFiles,
} from '../../src/tokenizer';

interface Added {
  id: number;
  content: string;
  special?: boolean;
  normalized?: boolean;
}

/** A BPE tokenizer.json like mergekit's test tokenizer (plus optional merges). */
function bpe(vocab: string[], added: Added[] = [], merges: unknown[] = [], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added.map((t) => ({
      id: t.id,
      content: t.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: t.normalized ?? !(t.special ?? true),
      special: t.special ?? true,
    })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', vocab: Object.fromEntries(vocab.map((t, i) => [t, i])), merges },
    ...extra,
  });
}

const SPECIALS: Added[] = [
  { id: 0, content: '<unk>' },
  { id: 1, content: '<s>' },
  { id: 2, content: '</s>' },
];

function words(n: number): string[] {
  return ['<unk>', '<s>', '</s>', ...Array.from({ length: n - 3 }, (_, i) => `_tok_${i + 3}`)];
}

function files(tokenizerJson: string | null, config: Record<string, unknown> | null = {}, more: Partial<TokenizerFiles> = {}): TokenizerFiles {
  return {
    tokenizerJson,
    tokenizerConfig: config === null ? null : JSON.stringify(config),
    specialTokensMap: null,
    chatTemplateJinja: null,
    ...more,
  };
}

function tok(json: string, config: Record<string, unknown> | null = {}): HfTokenizer {
  return parseTokenizer(files(json, config), 'test');
}

describe('reading tokenizer files', () => {
  it('reads the model vocabulary and the added tokens, tokenizer_config.json settings on top', () => {
    const t = tok(bpe(words(8), [...SPECIALS, { id: 8, content: '<|x|>', special: false }]), {
      added_tokens_decoder: { '8': { content: '<|x|>', lstrip: true, normalized: false, rstrip: false, single_word: false, special: true } },
    });
    expect(t.modelType).toBe('BPE');
    expect(t.modelVocab.size).toBe(8);
    expect(t.added.map((a) => [a.id, a.content, a.special, a.lstrip])).toEqual([
      [0, '<unk>', true, false],
      [1, '<s>', true, false],
      [2, '</s>', true, false],
      [8, '<|x|>', true, true],
    ]);
    expect(fullVocab(t).size).toBe(9);
  });

  it('keeps token strings that are object keys in JavaScript', () => {
    const t = tok(bpe(['<unk>', '__proto__', 'constructor', 'toString', '0']));
    expect(fullVocab(t).get('__proto__')).toBe(1);
    expect(fullVocab(t).get('constructor')).toBe(2);
    const written = JSON.parse(writeTokenizerFiles(t, null)['tokenizer.json']) as { model: { vocab: Record<string, number> } };
    expect(Object.getOwnPropertyDescriptor(written.model.vocab, '__proto__')?.value).toBe(1);
  });

  it('reads Unigram vocabularies (a list of [token, score])', () => {
    const json = JSON.stringify({ added_tokens: [], model: { type: 'Unigram', vocab: [['<unk>', 0], ['a', -1.5], ['b', -2]] } });
    expect([...fullVocab(tok(json))]).toEqual([['<unk>', 0], ['a', 1], ['b', 2]]);
  });

  it('explains what is wrong with a file', () => {
    expect(() => tok('{')).toThrow(/tokenizer.json of test is not valid JSON/);
    expect(() => tok('{"added_tokens": []}')).toThrow(/has no "model"/);
    expect(() => parseTokenizer(files(null), 'm')).toThrow(/model m has no tokenizer.json/);
  });
});

describe('building the output vocabulary (mergekit build_tokenizer)', () => {
  const base = tok(bpe(words(64), SPECIALS));
  const chat = tok(bpe(words(64), [...SPECIALS, { id: 64, content: '<|im_start|>', special: false }, { id: 65, content: '<|im_end|>', special: false }]));
  const padded = tok(
    bpe(
      [...words(64), '<UNUSED_0>', '<UNUSED_1>'],
      [...SPECIALS, { id: 64, content: '<UNUSED_0>' }, { id: 65, content: '<UNUSED_1>' }],
      ['_tok_5 _tok_6', '_tok_5 <UNUSED_0>', ['<UNUSED_1>', '_tok_7']],
    ),
  );
  const models = [
    { key: 'base', tokenizer: base, vocabSize: 64 },
    { key: 'padded', tokenizer: padded, vocabSize: 64 },
    { key: 'chat', tokenizer: chat, vocabSize: 66 },
  ];

  it('strips tokens beyond vocab_size from a BPE tokenizer, with their merges', () => {
    const stripped = stripTokenizer(padded, 64, 'padded');
    expect(fullVocab(stripped).size).toBe(64);
    expect(stripped.added).toHaveLength(3);
    expect(stripped.merges).toEqual(['_tok_5 _tok_6']);
    const written = JSON.parse(writeTokenizerFiles(stripped, null)['tokenizer.json']) as { model: { vocab: Record<string, number>; merges: unknown[] } };
    expect(Object.keys(written.model.vocab)).toHaveLength(64);
    expect(written.model.merges).toEqual(['_tok_5 _tok_6']);
    expect(stripTokenizer(base, 64, 'base')).toBe(base);
    const unigram = tok(JSON.stringify({ added_tokens: [], model: { type: 'Unigram', vocab: [['a', 0], ['b', 0]] } }));
    expect(() => stripTokenizer(unigram, 1, 'u')).toThrow(/only BPE vocabularies can be stripped/);
  });

  it('base: the stripped base; permutations map every model into it', () => {
    const v = buildOutputVocabulary({ base: 'padded', models: [models[1], models[0], models[2]], source: 'base' });
    expect(v.size).toBe(64);
    expect(v.paddedSize).toBe(64);
    expect(Array.from(v.permutations.get('chat')!)).toEqual(Array.from({ length: 64 }, (_, i) => i));
  });

  it('union: the base plus every token other models use, with first-seen settings', () => {
    const v = buildOutputVocabulary({ base: 'base', models, source: 'union' });
    expect(v.size).toBe(66);
    expect(v.tokens[64]).toBe('<|im_start|>');
    expect(v.tokens[65]).toBe('<|im_end|>');
    expect(v.tokenizer.added.map((t) => t.content)).toEqual(['<unk>', '<s>', '</s>', '<|im_start|>', '<|im_end|>']);
    expect(v.tokenizer.added[3]).toMatchObject({ id: 64, special: false, normalized: true });
    expect(Array.from(v.permutations.get('base')!.slice(62))).toEqual([62, 63, -1, -1]);
    expect(Array.from(v.permutations.get('padded')!.slice(62))).toEqual([62, 63, -1, -1]);
    expect(Array.from(v.permutations.get('chat')!.slice(62))).toEqual([62, 63, 64, 65]);
  });

  it('union adds normal tokens of other models as added tokens, after the base', () => {
    const other = tok(bpe(['<unk>', 'a', 'b', 'c'], [{ id: 0, content: '<unk>' }]));
    const small = tok(bpe(['<unk>', 'b', 'x'], [{ id: 0, content: '<unk>', special: false, normalized: true }]));
    const v = buildOutputVocabulary({
      base: 'small',
      models: [
        { key: 'other', tokenizer: other, vocabSize: 4 },
        { key: 'small', tokenizer: small, vocabSize: undefined },
      ],
      source: 'union',
    });
    expect(v.tokens).toEqual(['<unk>', 'b', 'x', 'a', 'c']);
    expect(Array.from(v.permutations.get('other')!)).toEqual([0, 2, -1, 1, 3]);
    expect(v.warnings.join('\n')).toMatch(/"<unk>" are added with different settings/);
    // the base's settings (first seen) are kept
    expect(v.tokenizer.added[0]).toMatchObject({ content: '<unk>', special: false });
  });

  it('a model as the source: its tokenizer as is, even tokens without embedding rows', () => {
    const v = buildOutputVocabulary({ base: 'base', models, source: { model: 'padded' } });
    expect(v.size).toBe(66);
    expect(v.sourceModel).toBe('padded');
    expect(v.permutations.get('padded')![64]).toBe(-1);
    expect(v.warnings.join('\n')).toMatch(/Model padded: 2 token\(s\).*"<UNUSED_0>".*vocab_size 64/);
  });

  it('adds the tokens of tokenizer.tokens when missing, and pads', () => {
    const v = buildOutputVocabulary({ base: 'base', models, source: 'base', addTokens: ['_tok_5', '<|new|>'], padToMultipleOf: 16 });
    expect(v.size).toBe(65);
    expect(v.tokens[64]).toBe('<|new|>');
    expect(v.tokenizer.added.at(-1)).toMatchObject({ id: 64, content: '<|new|>', special: false, normalized: true });
    expect(v.paddedSize).toBe(80);
  });

  it('a model without a tokenizer shares the base vocabulary', () => {
    const v = buildOutputVocabulary({ base: 'base', models: [models[0], { key: 'none', tokenizer: null, vocabSize: 64 }], source: 'union' });
    expect(v.size).toBe(64);
    expect(v.warnings.join('\n')).toContain('Model none has no tokenizer.json');
    expect(Array.from(v.permutations.get('none')!)).toEqual(Array.from({ length: 64 }, (_, i) => i));
  });
});

describe('aligning embeddings (mergekit PermutedEmbeddings)', () => {
  const vocabulary = () => {
    const base = tok(bpe(['a', 'b', 'c']));
    const x = tok(bpe(['c', 'b', 'd']));
    const y = tok(bpe(['d', 'c', 'e']));
    return buildOutputVocabulary({
      base: 'base',
      models: [
        { key: 'base', tokenizer: base, vocabSize: 3 },
        { key: 'x', tokenizer: x, vocabSize: 3 },
        { key: 'y', tokenizer: y, vocabSize: 3 },
      ],
      source: 'union',
      addTokens: ['z'],
      padToMultipleOf: 4,
    });
  };

  it('picks own rows, then the single owner, the base, the mean, or zeros', () => {
    const v = vocabulary();
    expect(v.tokens).toEqual(['a', 'b', 'c', 'd', 'e', 'z']);
    const inputs = ['base', 'x', 'y'].map((model) => ({ model, rows: 3 }));
    const { alignment, warnings } = alignEmbedding(v, inputs, 0, new Map());
    expect(alignment.tokens).toBe(6);
    expect(alignment.rows).toBe(8);
    expect(alignment.own.map((o) => Array.from(o))).toEqual([
      [0, 1, 2, -1, -1, -1],
      [-1, 1, 0, 2, -1, -1],
      [-1, -1, 1, 0, 2, -1],
    ]);
    const d = alignment.defaults;
    const terms = (k: number) => Array.from({ length: d.start[k + 1] - d.start[k] }, (_, j) => [d.input[d.start[k] + j], d.row[d.start[k] + j]]);
    // c: every input has it, so no default row
    expect(Array.from(d.rows)).toEqual([0, 1, 3, 4, 5]);
    expect(terms(0)).toEqual([[0, 0]]); // a: only the base has it
    expect(terms(1)).toEqual([[0, 1]]); // b: the base and x: the base's row
    expect(terms(2)).toEqual([[1, 2], [2, 0]]); // d: x and y but not the base: their mean
    expect(terms(3)).toEqual([[2, 2]]); // e: only y
    expect(terms(4)).toEqual([]); // z: nobody
    expect(warnings.join('\n')).toContain('"z"');
    // without the base: a is nobody's, b only x's, e only y's
    const noBase = alignEmbedding(v, inputs.slice(1), -1, new Map());
    expect(Array.from(noBase.alignment.defaults.rows)).toEqual([0, 1, 4, 5]);
  });

  it('applies tokens: sources and force', () => {
    const v = vocabulary();
    const inputs = ['base', 'x', 'y'].map((model) => ({ model, rows: 3 }));
    const rules = new Map([
      ['c', { source: { kind: 'model' as const, model: 'y' }, force: true }],
      ['z', { source: { kind: 'model_token' as const, model: 'x', token: 'd' } }],
      ['a', { source: { kind: 'zero' as const } }],
    ]);
    const { alignment } = alignEmbedding(v, inputs, 0, rules);
    expect(alignment.own.map((o) => o[2])).toEqual([-1, -1, -1]);
    const d = alignment.defaults;
    const k = (row: number) => Array.from(d.rows).indexOf(row);
    expect([d.input[d.start[k(2)]], d.row[d.start[k(2)]]]).toEqual([2, 1]);
    expect([d.input[d.start[k(5)]], d.row[d.start[k(5)]]]).toEqual([1, 2]);
    expect(d.start[k(0) + 1] - d.start[k(0)]).toBe(0);
    expect(() => alignEmbedding(v, inputs, 0, new Map([['e', { source: { kind: 'model' as const, model: 'base' } }]]))).toThrow(TokenizerError);
    expect(() => alignEmbedding(v, inputs, 0, new Map([['e', { source: { kind: 'model_token' as const, model: 'x', token_id: 3 } }]]))).toThrow(/out of range/);
    expect(() => alignEmbedding(v, inputs.slice(0, 2), 0, new Map([['e', { source: { kind: 'model' as const, model: 'y' } }]]))).toThrow(/not one of the models/);
  });

  it('refuses a permutation past the end of an embedding', () => {
    const v = vocabulary();
    expect(() => alignEmbedding(v, [{ model: 'x', rows: 2 }], -1, new Map())).toThrow(/has only 2 rows/);
  });
});

describe('writing tokenizer files', () => {
  it('writes added tokens into tokenizer.json and tokenizer_config.json, keeping everything else', () => {
    const t = parseTokenizer(
      files(bpe(words(6), SPECIALS, [], { normalizer: { type: 'NFC' } }), {
        add_bos_token: true,
        added_tokens_decoder: {},
        additional_special_tokens: ['<s>', '<gone>'],
        chat_template: 'old',
        tokenizer_class: 'LlamaTokenizerFast',
      }, { specialTokensMap: JSON.stringify({ bos_token: '<s>', additional_special_tokens: [{ content: '<gone>' }, '</s>'] }) }),
      't',
    );
    const v = buildOutputVocabulary({ base: 't', models: [{ key: 't', tokenizer: t, vocabSize: 6 }], source: 'base', addTokens: ['<|x|>'] });
    const out = writeTokenizerFiles(v.tokenizer, null);
    const json = JSON.parse(out['tokenizer.json']) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(['version', 'truncation', 'padding', 'added_tokens', 'normalizer', 'pre_tokenizer', 'post_processor', 'decoder', 'model']);
    expect(json.normalizer).toEqual({ type: 'NFC' });
    expect((json.added_tokens as { id: number; content: string }[]).map((a) => [a.id, a.content])).toEqual([[0, '<unk>'], [1, '<s>'], [2, '</s>'], [6, '<|x|>']]);
    const config = JSON.parse(out['tokenizer_config.json']) as Record<string, unknown>;
    expect(Object.keys(config)).toEqual(['add_bos_token', 'added_tokens_decoder', 'additional_special_tokens', 'chat_template', 'tokenizer_class']);
    expect((config.added_tokens_decoder as Record<string, unknown>)['6']).toEqual({
      content: '<|x|>', lstrip: false, normalized: true, rstrip: false, single_word: false, special: false,
    });
    expect(config.additional_special_tokens).toEqual(['<s>']);
    expect(config.chat_template).toBe('old');
    expect(JSON.parse(out['special_tokens_map.json'])).toEqual({ bos_token: '<s>', additional_special_tokens: ['</s>'] });
    expect(JSON.parse(writeTokenizerFiles(v.tokenizer, '{{ new }} template text')['tokenizer_config.json']).chat_template).toBe('{{ new }} template text');
  });

  it('sets the chat template of a copied tokenizer_config.json', () => {
    const text = withChatTemplate('{"a": 1, "chat_template": "x", "b": 2}', 'T');
    expect(text).toBe('{\n  "a": 1,\n  "chat_template": "T",\n  "b": 2\n}\n');
  });
});

describe('chat templates (docs/tokenizers.md §5)', () => {
  it('ships mergekit\'s built-in templates', () => {
    expect(Object.keys(BUILTIN_CHAT_TEMPLATES).sort()).toEqual(['alpaca', 'chatml', 'exaone', 'llama3', 'mistral']);
    expect(BUILTIN_CHAT_TEMPLATES.chatml).toBe(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}\n" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}\n",
    );
    expect(resolveChatTemplate('llama3', []).template).toContain('<|start_header_id|>');
  });

  it('auto: the most common template (trimmed), ties to the first model, none keeps the own one', () => {
    const pick = (...templates: (string | null)[]) => resolveChatTemplate('auto', templates.map((template, i) => ({ model: `m${i}`, template })));
    expect(pick('A', ' B\n', 'B').template).toBe('B');
    expect(pick('A', 'B').template).toBe('A');
    expect(pick(null, '', 'C').description).toBe('auto: the template of m2');
    expect(pick(null, '  ').template).toBeNull();
  });

  it('a literal template is kept; a short one without { is refused', () => {
    expect(resolveChatTemplate("{{messages[0]['content']}}", []).template).toBe("{{messages[0]['content']}}");
    expect(() => resolveChatTemplate('chatmlx', [])).toThrow(/Invalid chat template/);
  });

  it('reads a model\'s own template as transformers does', () => {
    expect(ownChatTemplate(files('{}', { chat_template: 'T' }))).toBe('T');
    expect(ownChatTemplate(files('{}', { chat_template: [{ name: 'tool_use', template: 'U' }, { name: 'default', template: 'D' }] }))).toBe('D');
    expect(ownChatTemplate(files('{}', { chat_template: 'T' }, { chatTemplateJinja: 'J' }))).toBe('J');
    expect(ownChatTemplate(files('{}', {}))).toBeNull();
    expect(ownChatTemplate(files('{}', null))).toBeNull();
  });
});
