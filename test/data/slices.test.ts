/** 2-D slices of 3-D stacks keep their world position; the learned methods' ACDC split. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acdcSplit, caseSlice, middleSliceOf, volumeSlice } from '../../src/data/index.ts';
import { Volume, type Mat3 } from '../../src/geometry/index.ts';

// A 3×2×4 volume whose value is its flat index; rotated 90° about z, spacing 2×3×5 mm.
const direction: Mat3 = [0, -1, 0, 1, 0, 0, 0, 0, 1];
const volume = new Volume({
  data: Float32Array.from({ length: 24 }, (_, i) => i),
  dims: [3, 2, 4],
  spacing: [2, 3, 5],
  origin: [10, 20, 30],
  direction,
});

test('volumeSlice: slice k holds voxels k·6 … k·6 + 5 and sits k·5 mm along the third axis', () => {
  const s = volumeSlice(volume, 2);
  assert.deepEqual(s.dims, [3, 2, 1]);
  assert.deepEqual([...s.data], [12, 13, 14, 15, 16, 17]);
  assert.deepEqual(s.origin, [10, 20, 40]);
  assert.deepEqual(s.voxelToWorld([1, 1, 0]), volume.voxelToWorld([1, 1, 2]));
  assert.throws(() => volumeSlice(volume, 4), /slice: expected an integer/);
});

test('caseSlice slices images and labels alike; middleSliceOf finds the middle of a label', () => {
  const labels = volume.withData(
    Uint8Array.from({ length: 24 }, (_, i) => (i >= 6 && i < 18 && i % 6 === 0 ? 3 : 0)),
  );
  const item = caseSlice({ id: 'p', fixed: volume, moving: volume, fixedLabels: labels, modality: 'mr' }, 1);
  assert.equal(item.id, 'p/slice1');
  assert.deepEqual([...item.fixedLabels!.data], [3, 0, 0, 0, 0, 0]);
  // Label 3 on slices 1 and 2: the lower middle is 1.
  assert.equal(middleSliceOf(labels, 3), 1);
  assert.throws(() => middleSliceOf(labels, 2), /no voxel has label 2/);
});

test('acdcSplit: the last four patients of each group of twenty validate', () => {
  const validation = Array.from({ length: 100 }, (_, n) => `patient${String(n + 1).padStart(3, '0')}`).filter(
    (id) => acdcSplit(id) === 'validation',
  );
  assert.equal(validation.length, 20);
  assert.deepEqual(validation.slice(0, 5), [
    'patient017',
    'patient018',
    'patient019',
    'patient020',
    'patient037',
  ]);
  assert.throws(() => acdcSplit('patient101'), /not a training patient/);
});
