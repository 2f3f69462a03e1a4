/** The extraction side of src/lora (Node and browser alike): planning and running it. */
export { planExtraction, type ExtractAction, type ExtractOptions, type ExtractPlan } from './extract-plan';
export { extractLora, ExtractCancelledError, type ExtractReport, type ExtractRunOptions, type ExtractSources, type ModuleReport } from './extract-lora';
export { factorize, type LoraFactors } from './factorize';
export { randomizedSvd, type RandomizedSvd } from './randomized-svd';
export { memoryRowBlocks, type RowBlocks } from './row-blocks';
export { orthonormalColumns } from './householder-qr';
export { symmetricEigen } from './jacobi-eigen';
export { relativeError } from './reconstruction-error';
