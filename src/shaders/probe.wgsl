// Start-up probe: does fma() round once? With e = 1 + 2^-23, e·e − (1 + 2^-22) = 2^-46 exactly,
// which a fused multiply-add returns and a multiply-then-add rounds to 0.

@group(0) @binding(1) var<storage, read> probe_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> probe_out: array<f32>;

@compute @workgroup_size(1)
fn fma_probe() {
  probe_out[0] = fma(probe_in[0], probe_in[1], probe_in[2]);
}
