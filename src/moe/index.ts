/**
 * Mixture-of-experts builds from mergekit-moe configs (docs/moe.md). One entry point for the CLI
 * and the app's worker:
 *
 *   const report = await runMoeMerge(config, sources, output, options, onProgress);
 *
 * `config` is a MoeConfig (parseMoeConfig / the app's form), `sources.folder(ref, yamlPath)`
 * resolves each model reference to a ModelFolder, `output` is an OutputFolder that appears only on
 * commit. Bad input throws a MoeConfigError (with the YAML path) before any weight is read, and
 * nothing is written. No Node-only imports: files go through the storage abstractions.
 */
export { runMoeMerge } from './run';
export { planMoe } from './plan';
export { computeRouters } from './gates';
export { conditionNumber, degenerateLayers, degenerateWarning, DEGENERATE_CONDITION } from './degenerate';
export { OUTPUT_ARCHITECTURES, MLP_PROJECTIONS, type MoeLayout, type OutputArchitecture } from './architectures';
export { MoeCancelledError, MoeConfigError } from './errors';
export type { MoeOptions, MoePlan, MoeProgress, MoeReport, MoeSources, OutputTensor } from './types';
