/**
 * LoRA adapters (docs/lora.md): reading PEFT adapters and matching them to a model's tensors,
 * the f32 product applied per chunk of rows, and extracting adapters from a fine-tune.
 */
export { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, moduleScale, parseLoraConfig, patternKey, targetsModule, type LoraConfig } from './adapter-config';
export { indexAdapter, resolveAdapter, type AdapterTarget, type LoraAdapter, type LoraModuleWeights } from './adapter';
export { LoraAdapterError } from './errors';
export { loadLoraAdapter } from './load-adapter';
export { addScaledProduct } from './matmul';
export { symmetricEigen } from './jacobi-eigen';
