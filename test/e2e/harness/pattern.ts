/** Byte `i` of the harness's test files: not periodic at any power of two below 2^20. */
export const patternByte = (i: number): number => (i * 7 + Math.floor(i / 4099)) & 255;
