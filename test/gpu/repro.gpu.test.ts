import { it } from 'vitest';
import { trace } from './trace';
import { nodeGpu } from '../../src/gpu/node';
import { requestAdapter, requestDevice } from '../../src/gpu/device';
import { probeFusedFma } from '../../src/gpu/kernels';
import { CpuBackend } from '../../src/backend';
import { runJob } from './helpers';

it('device after cpu jobs', async () => {
  if (process.env.REPRO === 'jobs') {
    const cpu = new CpuBackend();
    for (let k = 0; k < 200; k++) await runJob(cpu, { shape: [37, 129], inputs: [{ values: new Float32Array(37 * 129), dtype: 'F32' }], dtype: 'F32', budgetBytes: 65536 }, async (t) => t.apply((c) => c.add(c.input(0), 1)));
  }
  trace('gpu');
  const gpu = await nodeGpu();
  trace('adapter');
  const adapter = await requestAdapter(gpu);
  trace('device');
  const { device } = await requestDevice(adapter);
  trace('probe');
  trace(`fused ${await probeFusedFma(device)}`);
  device.destroy();
  trace('done');
});
