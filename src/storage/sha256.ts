/**
 * Streaming SHA-256 (FIPS 180-4) whose state can be saved and restored at any 64-byte boundary.
 * The shard cache hashes a multi-GB file block by block as it downloads and stores the midstate
 * with its block map, so a download resumed after a reload does not read the file again to
 * verify it. (WebCrypto cannot stream, and hashing libraries do not expose their midstate.)
 */

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const INITIAL = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/** The state between blocks: eight chaining words and the number of bytes hashed (a multiple of 64). */
export interface Sha256State {
  readonly h: readonly number[];
  readonly bytes: number;
}

export class Sha256 {
  private readonly h = new Uint32Array(INITIAL);
  private readonly w = new Uint32Array(64);
  private readonly pending = new Uint8Array(64);
  private pendingLength = 0;
  private total = 0;
  private finished = false;

  /** Continues from a saved state. */
  static resume(state: Sha256State): Sha256 {
    if (state.h.length !== 8 || state.bytes % 64 !== 0 || !Number.isSafeInteger(state.bytes) || state.bytes < 0) {
      throw new Error('invalid SHA-256 state');
    }
    const hasher = new Sha256();
    hasher.h.set(state.h.map((x) => x >>> 0));
    hasher.total = state.bytes;
    return hasher;
  }

  /** Bytes hashed so far. */
  get bytes(): number {
    return this.total + this.pendingLength;
  }

  /** The state to save; only at a 64-byte boundary (nothing buffered). */
  state(): Sha256State {
    if (this.pendingLength !== 0) throw new Error('SHA-256 state can only be saved at a 64-byte boundary');
    return { h: Array.from(this.h), bytes: this.total };
  }

  update(data: Uint8Array): this {
    if (this.finished) throw new Error('SHA-256 already finished');
    let offset = 0;
    if (this.pendingLength > 0) {
      const take = Math.min(64 - this.pendingLength, data.byteLength);
      this.pending.set(data.subarray(0, take), this.pendingLength);
      this.pendingLength += take;
      offset = take;
      if (this.pendingLength < 64) return this;
      this.compress(this.pending, 0);
      this.total += 64;
      this.pendingLength = 0;
    }
    const end = offset + Math.floor((data.byteLength - offset) / 64) * 64;
    for (let at = offset; at < end; at += 64) this.compress(data, at);
    this.total += end - offset;
    if (end < data.byteLength) {
      this.pending.set(data.subarray(end), 0);
      this.pendingLength = data.byteLength - end;
    }
    return this;
  }

  /** Finishes and returns the digest as lowercase hex. */
  hex(): string {
    const digest = this.digest();
    let out = '';
    for (const byte of digest) out += byte.toString(16).padStart(2, '0');
    return out;
  }

  digest(): Uint8Array {
    if (this.finished) throw new Error('SHA-256 already finished');
    const bitLength = (this.total + this.pendingLength) * 8;
    const padding = new Uint8Array(this.pendingLength < 56 ? 64 - this.pendingLength : 128 - this.pendingLength);
    padding[0] = 0x80;
    const view = new DataView(padding.buffer);
    // 64-bit big-endian length; file sizes stay far below 2^53 bits.
    view.setUint32(padding.length - 8, Math.floor(bitLength / 2 ** 32));
    view.setUint32(padding.length - 4, bitLength >>> 0);
    this.update(padding);
    this.finished = true;
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) outView.setUint32(i * 4, this.h[i]);
    return out;
  }

  private compress(data: Uint8Array, offset: number): void {
    const w = this.w;
    for (let i = 0; i < 16; i++) {
      const j = offset + i * 4;
      w[i] = (data[j] << 24) | (data[j + 1] << 16) | (data[j + 2] << 8) | data[j + 3];
    }
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15];
      const b = w[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    const h = this.h;
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[i] + w[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0;
    h[1] = (h[1] + b) | 0;
    h[2] = (h[2] + c) | 0;
    h[3] = (h[3] + d) | 0;
    h[4] = (h[4] + e) | 0;
    h[5] = (h[5] + f) | 0;
    h[6] = (h[6] + g) | 0;
    h[7] = (h[7] + hh) | 0;
  }
}
