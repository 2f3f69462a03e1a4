import codecWgsl from '../shaders/codec.wgsl?raw';
import commonWgsl from '../shaders/common.wgsl?raw';
import elementwiseWgsl from '../shaders/elementwise.wgsl?raw';
import keepTopWgsl from '../shaders/keep_top.wgsl?raw';
import matrixWgsl from '../shaders/matrix.wgsl?raw';
import periodicWgsl from '../shaders/periodic.wgsl?raw';
import probeWgsl from '../shaders/probe.wgsl?raw';
import rankWgsl from '../shaders/rank.wgsl?raw';
import reduceWgsl from '../shaders/reduce.wgsl?raw';
import signConsensusWgsl from '../shaders/sign_consensus.wgsl?raw';

const SOURCES = {
  codec: codecWgsl,
  elementwise: elementwiseWgsl,
  keepTop: keepTopWgsl,
  matrix: matrixWgsl,
  periodic: periodicWgsl,
  probe: probeWgsl,
  rank: rankWgsl,
  reduce: reduceWgsl,
  signConsensus: signConsensusWgsl,
} as const;

export type ShaderName = keyof typeof SOURCES;

/** Lines generated for a shader's `//@NAME` markers (term bindings and per-term statements). */
export interface Generated {
  /** Identifies the generated variant in the caches. */
  readonly key: string;
  readonly snippets: Readonly<Record<string, string>>;
}

/** A pipeline plus its bind group layout (fetched once: getBindGroupLayout makes a new object). */
export interface Kernel {
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly label: string;
}

/** Shader modules and compute pipelines, compiled on first use and cached for the device. */
export class KernelCache {
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly kernels = new Map<string, Kernel>();
  /** Compilation messages of modules that failed, for error reports. */
  readonly compileErrors: string[] = [];

  /**
   * `fusedFma`: whether the device's fma() rounds once (see `probeFusedFma`); every pipeline gets
   * it as the FMA_FUSED override of common.wgsl.
   */
  constructor(
    private readonly device: GPUDevice,
    private readonly fusedFma: boolean,
  ) {}

  get(shader: ShaderName, entryPoint: string, constants: Readonly<Record<string, number>> = {}, generated?: Generated): Kernel {
    const moduleKey = generated ? `${shader}#${generated.key}` : shader;
    const constantKey = Object.entries(constants).map(([k, v]) => `${k}=${v}`).join(',');
    const key = `${moduleKey}:${entryPoint}:${constantKey}`;
    const cached = this.kernels.get(key);
    if (cached) return cached;
    const pipeline = this.device.createComputePipeline({
      label: key,
      layout: 'auto',
      compute: {
        module: this.module(shader, moduleKey, generated),
        entryPoint,
        constants: { ...constants, FMA_FUSED: this.fusedFma ? 1 : 0 },
      },
    });
    const kernel = { pipeline, layout: pipeline.getBindGroupLayout(0), label: key };
    this.kernels.set(key, kernel);
    return kernel;
  }

  private module(shader: ShaderName, key: string, generated?: Generated): GPUShaderModule {
    const cached = this.modules.get(key);
    if (cached) return cached;
    const code = shaderSource(shader, generated);
    const module = this.device.createShaderModule({ label: key, code });
    module
      .getCompilationInfo?.()
      .then((info) => {
        const errors = info.messages.filter((m) => m.type === 'error');
        if (errors.length > 0) {
          this.compileErrors.push(`${key}: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`);
        }
      })
      .catch(() => undefined);
    this.modules.set(key, module);
    return module;
  }
}

/** The full WGSL of a shader: the shared helpers, then the file with its markers filled in. */
export function shaderSource(shader: ShaderName, generated?: Generated): string {
  let body: string = SOURCES[shader];
  if (generated) {
    for (const [name, text] of Object.entries(generated.snippets)) {
      const marker = `//@${name}`;
      if (!body.includes(marker)) throw new Error(`internal: shader ${shader} has no ${marker} marker`);
      body = body.split(marker).join(text);
    }
  }
  return `${commonWgsl}\n${body}`;
}

/**
 * Whether fma() on this device rounds once. WGSL does not promise it (SwiftShader's does not);
 * when it does not, kernels compute exact products with Dekker's method instead.
 */
export async function probeFusedFma(device: GPUDevice): Promise<boolean> {
  const module = device.createShaderModule({ label: 'fma probe', code: shaderSource('probe') });
  const pipeline = await device.createComputePipelineAsync({
    label: 'fma probe',
    layout: 'auto',
    compute: { module, entryPoint: 'fma_probe' },
  });
  const STORAGE = 0x80, COPY_SRC = 0x04, COPY_DST = 0x08, MAP_READ = 0x01;
  const input = device.createBuffer({ size: 16, usage: STORAGE | COPY_DST });
  const output = device.createBuffer({ size: 16, usage: STORAGE | COPY_SRC });
  const staging = device.createBuffer({ size: 16, usage: MAP_READ | COPY_DST });
  const e = 1 + 2 ** -23;
  device.queue.writeBuffer(input, 0, new Float32Array([e, e, -(1 + 2 ** -22), 0]));
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(
    0,
    device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 1, resource: { buffer: input } },
        { binding: 2, resource: { buffer: output } },
      ],
    }),
  );
  pass.dispatchWorkgroups(1);
  pass.end();
  encoder.copyBufferToBuffer(output, 0, staging, 0, 16);
  device.queue.submit([encoder.finish()]);
  try {
    await staging.mapAsync(1);
    const result = new Float32Array(staging.getMappedRange().slice(0))[0];
    // Unmap before destroying: dawn.node frees mapped memory that a live ArrayBuffer points at.
    staging.unmap();
    return result === 2 ** -46;
  } finally {
    staging.destroy();
    input.destroy();
    output.destroy();
  }
}

/** sign_consensus.wgsl for `count` terms per pass, bound as t0… from binding 4. */
export function signConsensusVariant(count: number): Generated {
  const j = Array.from({ length: count }, (_, i) => i);
  return {
    key: String(count),
    snippets: {
      DECLS: j.map((i) => `@group(0) @binding(${4 + i}) var<storage, read> t${i}: array<f32>;`).join('\n'),
      LOAD: j.map((i) => `let W${i} = scale(${i}u) * t${i}[i];`).join('\n  '),
      TOTAL: j.map((i) => `tot = df_add(tot, W${i});`).join('\n  '),
      MIX: j.map((i) => `agree(&m, &d, W${i}, sgn, weight(${i}u));`).join('\n  '),
    },
  };
}
