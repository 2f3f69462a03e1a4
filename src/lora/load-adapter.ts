import { readSafetensorsHeader } from '../storage/safetensors-reader';
import type { ModelFolder } from '../storage/types';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, parseLoraConfig } from './adapter-config';
import { indexAdapter, type LoraAdapter } from './adapter';
import { LoraAdapterError } from './errors';

/** Reads a PEFT adapter folder's config and tensor headers (never its weights). */
export async function loadLoraAdapter(folder: ModelFolder, name: string): Promise<LoraAdapter> {
  const configText = await folder.readText(ADAPTER_CONFIG_FILE);
  if (configText === null) {
    throw new LoraAdapterError(
      `LoRA adapter ${name}: ${folder.id} has no ${ADAPTER_CONFIG_FILE}. A PEFT adapter folder holds ${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE}; check the path after '+'.`,
    );
  }
  const config = parseLoraConfig(configText, `${folder.id}/${ADAPTER_CONFIG_FILE}`);
  const source = await folder.open(ADAPTER_WEIGHTS_FILE);
  if (source === null) {
    const bin = (await folder.listFiles()).includes('adapter_model.bin');
    throw new LoraAdapterError(
      `LoRA adapter ${name}: ${folder.id} has no ${ADAPTER_WEIGHTS_FILE}` +
        (bin ? ' (only adapter_model.bin, which Alloy does not read: re-save the adapter with safe_serialization=True)' : ''),
    );
  }
  try {
    const header = await readSafetensorsHeader(source, ADAPTER_WEIGHTS_FILE, { model: name });
    return indexAdapter(name, folder.id, config, header.tensors, `${folder.id}/${ADAPTER_WEIGHTS_FILE}`);
  } finally {
    await source.close?.();
  }
}
