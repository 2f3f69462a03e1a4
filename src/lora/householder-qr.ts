/**
 * Orthonormal basis of the column space of an m×k matrix (k ≤ m) by Householder QR, in float64.
 * Columns are stored one after another (`cols[c*m + i]`), so every reflection runs along
 * contiguous memory. Returns Q (m×k, same layout); the input is overwritten. Householder keeps
 * Q orthonormal to rounding even when the columns are (nearly) dependent, as a low-rank ΔW·Ω is.
 */
export function orthonormalColumns(cols: Float64Array, m: number, k: number): Float64Array {
  if (k > m) throw new RangeError(`orthonormalColumns: ${k} columns of length ${m}`);
  const tau = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    const v = cols.subarray(j * m + j, (j + 1) * m);
    let norm2 = 0;
    for (let i = 0; i < v.length; i++) norm2 += v[i] * v[i];
    if (norm2 === 0) continue; // nothing left in this column: the reflector is the identity
    const norm = Math.sqrt(norm2);
    const alpha = v[0] > 0 ? -norm : norm;
    // v = x − alpha·e1; ‖v‖² = ‖x‖² − 2·alpha·x0 + alpha².
    const vnorm2 = norm2 - 2 * alpha * v[0] + alpha * alpha;
    v[0] -= alpha;
    tau[j] = 2 / vnorm2;
    for (let c = j + 1; c < k; c++) {
      const x = cols.subarray(c * m + j, (c + 1) * m);
      let s = 0;
      for (let i = 0; i < v.length; i++) s += v[i] * x[i];
      s *= tau[j];
      for (let i = 0; i < v.length; i++) x[i] -= s * v[i];
    }
  }
  // Q = H0·H1·…·H(k−1)·I[:, :k], applied from the last reflector back.
  const q = new Float64Array(m * k);
  for (let c = 0; c < k; c++) q[c * m + c] = 1;
  for (let j = k - 1; j >= 0; j--) {
    if (tau[j] === 0) continue;
    const v = cols.subarray(j * m + j, (j + 1) * m);
    for (let c = j; c < k; c++) {
      const x = q.subarray(c * m + j, (c + 1) * m);
      let s = 0;
      for (let i = 0; i < v.length; i++) s += v[i] * x[i];
      s *= tau[j];
      for (let i = 0; i < v.length; i++) x[i] -= s * v[i];
    }
  }
  return q;
}
