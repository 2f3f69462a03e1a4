/**
 * Vitest global setup: compiles the SIMD kernels (`npm run build:wasm`) so `npx vitest run` works
 * in a fresh checkout too; the generated module is rewritten only when the kernels change.
 */
export default async function setup(): Promise<void> {
  // @ts-expect-error -- a plain ES module script without type declarations
  await import('../../scripts/build-wasm.mjs');
}
