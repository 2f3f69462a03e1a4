import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { formatModelReference } from '../config';
import type { MergeConfig } from '../config/types';
import type { SourceOpener } from '../engine';
import { loadModelMetadata, needsTokenizerFiles, referencedModels, type ModelMetadata } from '../plan';
import { untrustedText } from '../storage';
import { NodeByteSource, nodeModelFolder } from '../storage/node-fs';

/** Models of a config found on the local disk, with the opener the engine reads them through. */
export interface LocalModels {
  readonly metadata: Map<string, ModelMetadata>;
  readonly sources: SourceOpener & { closeAll(): Promise<void> };
  readonly warnings: string[];
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/** Resolves every model of the config against `cwd` (like mergekit) and reads its metadata. */
export async function loadLocalModels(config: MergeConfig, cwd: string): Promise<LocalModels> {
  const metadata = new Map<string, ModelMetadata>();
  const dirs = new Map<string, string>();
  const warnings: string[] = [];
  for (const ref of referencedModels(config)) {
    const key = formatModelReference(ref);
    const dir = path.resolve(cwd, ref.path);
    const shownKey = untrustedText(key);
    const shownDir = untrustedText(dir);
    if (!existsSync(dir)) {
      const hint = HUB_ID.test(ref.path)
        ? ` It looks like a Hugging Face Hub id; the CLI reads local folders only for now: download it first ` +
          `(e.g. \`huggingface-cli download ${untrustedText(ref.path)} --local-dir ${untrustedText(ref.path)}\`) or use the Alloy web app.`
        : ' Check the path (relative paths are resolved against the current directory).';
      throw new ModelNotFoundError(`Model ${shownKey}: folder ${shownDir} does not exist.${hint}`);
    }
    if (!statSync(dir).isDirectory()) throw new ModelNotFoundError(`Model ${shownKey}: ${shownDir} is not a folder.`);
    if (ref.revision) warnings.push(`Model ${shownKey}: revision '${untrustedText(ref.revision)}' is ignored for a local folder.`);
    dirs.set(key, dir);
    metadata.set(key, await loadModelMetadata(nodeModelFolder(dir, key), key, undefined, { tokenizer: needsTokenizerFiles(config) }));
  }
  const open = new Set<NodeByteSource>();
  return {
    metadata,
    warnings,
    sources: {
      async open(model, file) {
        const dir = dirs.get(model);
        if (!dir) throw new Error(`internal: unknown model ${model}`);
        const source = await NodeByteSource.open(path.join(dir, file));
        open.add(source);
        return source;
      },
      async closeAll() {
        await Promise.allSettled([...open].map((s) => s.close()));
        open.clear();
      },
    },
  };
}

/** A model folder named in the config is missing or not a folder: a config problem (exit 2). */
export class ModelNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelNotFoundError';
  }
}
