/**
 * Shared by the LDM-Morph method tests: a tiny untrained model (64² network grid) exported as the
 * shipped files are, and a synthetic ACDC folder.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed, nn, noGrad, randn } from '../../src/engine/index.ts';
import { Volume, type Mat3, type Vec3 } from '../../src/geometry/index.ts';
import { writeVolume } from '../../src/io/index.ts';
import { Ldm2dAutoencoder, Ldm2dUNet } from '../../src/models/ldm2d/index.ts';
import { LdmMorph } from '../../src/models/ldmmorph/index.ts';
import { exportLdm, exportNetwork, loadLdm } from '../../src/methods/ldmmorph/model.ts';
import { networkRecord } from '../../src/methods/ldmmorph/train.ts';
import { TINY_LDM2D, TINY_LDM_MORPH } from '../models/ldm-fixtures.ts';

/**
 * Writes an untrained tiny model (LDM and full network) into `dir`, its registration head made to
 * give displacements of a few pixels (the initialised head gives about 0).
 */
export function exportTinyModel(dir: string): void {
  manualSeed(5);
  const autoencoder = new Ldm2dAutoencoder(TINY_LDM2D);
  const unet = new Ldm2dUNet(TINY_LDM2D);
  unet.latentScale = 0.75;
  exportLdm(dir, autoencoder, unet, {});
  const loaded = loadLdm(dir);
  const record = networkRecord('full', loaded.ldm, loaded.sha256, TINY_LDM_MORPH);
  const network = new LdmMorph(record.config);
  const head = network.regHead.conv as nn.Conv2d;
  noGrad(() => head.weight.copy_(randn(head.weight.shape).mul(0.05)));
  exportNetwork(dir, network, record, {});
  for (const m of [autoencoder, unet, network]) m.dispose();
  loaded.dispose();
}

/** Intensity and label at in-plane position (x, y) mm from the heart's centre; the ES heart is smaller. */
function heart(x: number, y: number, es: boolean): { value: number; label: number } {
  const r = Math.hypot(x, y) / (es ? 0.8 : 1);
  if (r < 20) return { value: 260, label: 3 };
  if (r < 30) return { value: 110, label: 2 };
  if (x > 30 && x < 60 && Math.abs(y) < 15) return { value: 230, label: 1 };
  return { value: 30 + ((x * 7 + y * 3) % 11), label: 0 };
}

/**
 * An ACDC-like folder: per patient ED/ES short-axis stacks (48×44×6 voxels of 4×4×10 mm, ACDC's
 * diag(−1, −1, 1) direction) and labels, the last slice of ED blank (no image content).
 */
export async function syntheticAcdc(root: string, ids: readonly string[]): Promise<void> {
  const dims: Vec3 = [48, 44, 6];
  const direction: Mat3 = [-1, 0, 0, 0, -1, 0, 0, 0, 1];
  for (const id of ids) {
    mkdirSync(join(root, id), { recursive: true });
    for (const frame of ['ed', 'es']) {
      const image = new Float32Array(dims[0] * dims[1] * dims[2]);
      const labels = new Uint8Array(image.length);
      for (let t = 0; t < image.length; t++) {
        const [i, j, k] = [
          t % dims[0],
          Math.floor(t / dims[0]) % dims[1],
          Math.floor(t / (dims[0] * dims[1])),
        ];
        const h = heart(4 * (i - 24), 4 * (j - 22), frame === 'es');
        const blank = frame === 'ed' && k === dims[2] - 1;
        image[t] = blank ? 0 : h.value;
        labels[t] = blank ? 0 : h.label;
      }
      const geometry = { dims, spacing: [4, 4, 10] as Vec3, direction };
      await writeVolume(join(root, id, `${frame}.nii.gz`), new Volume({ data: image, ...geometry }));
      await writeVolume(join(root, id, `${frame}_gt.nii.gz`), new Volume({ data: labels, ...geometry }));
    }
  }
}
