import { existsSync } from 'node:fs';

// Dawn needs a Vulkan driver; machines without a GPU use the SwiftShader ICD that Debian's
// chromium package ships (docs/testing.md §1). Set before the `webgpu` module is first loaded.
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) {
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
}
