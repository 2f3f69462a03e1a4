/**
 * Seeded random numbers for random routers and `noise_scale` (docs/moe.md §4). mergekit draws
 * them from torch's global generator, which no other program reproduces; Alloy's streams depend
 * only on (seed, label), so a run is repeatable with `--random-seed` and one tensor's numbers do not
 * depend on which other tensors exist. The same streams as LoRA extraction's.
 */
export { randomStream, type RandomStream } from '../lora/gaussian';
