import { setFlagsFromString } from 'node:v8';

/**
 * V8 optimizes a JavaScript function once it has run for a budget of ticks (132 KiB by default).
 * A merge's time is in its WebAssembly kernels, yet with the default V8 optimized ~190 functions
 * of glue that runs a few thousand times, which took its optimizing compiler ~0.26 s of CPU on the
 * two cores of a 1.5 s merge. Eight times the budget leaves about a dozen, the loops that run hot
 * (histogram scans, base64 decoding). Alternating runs, 3-4 × 337 MB, 2 threads, 6 each, median
 * wall seconds: dare_ties 1.80 -> 1.61, ties 2.05 -> 1.85, model_stock 1.22 -> 1.08, linear 0.75
 * -> 0.82 (within its noise; CPU 1.17 -> 1.22). Imported first by the CLI, so that its code and
 * its pool's workers run with it (V8 flags are per process); the budget is read as functions run.
 */
setFlagsFromString('--interrupt-budget=1081344');
