/**
 * LDM-Morph's 2-D scores against known displacements: the true shift of a shifted slice pair scores
 * Dice 1 without folding, the identity scores the overlap worked out by hand, and a displacement that
 * folds a known band of pixels gives that band's share of det J ≤ 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { arange, full, stack, tidy, zeros, type Tensor } from '../../src/engine/index.ts';
import type { AcdcSlice } from '../../src/methods/ldmmorph/data.ts';
import { foldedPercent, sliceScores } from '../../src/methods/ldmmorph/evaluate.ts';

/** Labels on a 32² grid: RV rows 2–5, myocardium rows 10–13, LV rows 20–27, all in columns 8–23. */
function bands(offset: number): Tensor {
  return tidy(() => {
    const labels = zeros([1, 1, 32, 32]);
    for (const [label, from, rows] of [
      [1, 2, 4],
      [2, 10, 4],
      [3, 20, 8],
    ])
      labels
        .narrow(2, from + offset, rows)
        .narrow(3, 8, 16)
        .fill_(label);
    return labels;
  });
}

/** ED the bands, ES the bands moved 2 rows down (es(p) = ed(p − 2·e₀)). */
const pair = (): AcdcSlice =>
  tidy(() => {
    const [edLabels, esLabels] = [bands(0), bands(2)];
    return { id: 'patient017', slice: 0, ed: edLabels.div(3), es: esLabels.div(3), edLabels, esLabels };
  });

test('sliceScores: the true shift scores 1, the identity the overlap by hand, mean of myocardium and LV', () => {
  const p = pair();
  tidy(() => {
    // ed(p) = es(p + 2·e₀): the ES → ED displacement is +2 rows along axis 2 (component 0).
    const shift = (moving: Tensor, fixed: Tensor) => {
      assert.ok(moving === p.es && fixed === p.ed, 'ES moving, ED fixed');
      return stack([full([32, 32], 2), zeros([32, 32])], 0).unsqueeze(0);
    };
    const right = sliceScores([p], shift);
    assert.deepEqual(right.dice, { RV: 1, myocardium: 1, LV: 1 });
    assert.equal(right.myocardiumLvMean, 1);
    assert.equal(right.foldedPercent, 0);
    assert.equal(right.pairs, 1);
    const identity = sliceScores([p], () => zeros([1, 2, 32, 32]));
    // Bands of 4 rows moved 2 overlap in 2 rows: Dice 2·2/(4 + 4) = 0.5; the LV's 8 rows: 2·6/16 = 0.75.
    assert.deepEqual(identity.dice, { RV: 0.5, myocardium: 0.5, LV: 0.75 });
    assert.equal(identity.myocardiumLvMean, 0.625);
    assert.ok(identity.secondsPerPair >= 0);
  });
});

test('foldedPercent: a band where the displacement falls as fast as the grid advances folds', () => {
  tidy(() => {
    // u0 = −i on rows 8–15 (∂u0/∂i = −1, det J = 0: counted), 0 elsewhere, on 32 × 32 pixels.
    const ramp = arange(0, 32, 1).float().neg().reshape(32, 1).expand([32, 32]);
    const rows = arange(0, 32, 1).reshape(32, 1).expand([32, 32]);
    const inside = rows.ge(8).logicalAnd(rows.le(15));
    const u0 = ramp.mul(inside.float());
    const u = stack([u0, zeros([32, 32])], 0).unsqueeze(0);
    // Central differences, det J = 1 + (u0(i + 1) − u0(i − 1))/2: rows 9–14 inside the band 0;
    // row 7 1 + (−8 − 0)/2 and row 8 1 + (−9 − 0)/2 fold too; rows 15 and 16 see the jump back to 0
    // (1 + 14/2, 1 + 15/2) and do not: rows 7–14, 8 of 32 rows.
    assert.equal(foldedPercent(u), (100 * 8) / 32);
    assert.equal(foldedPercent(zeros([1, 2, 32, 32])), 0);
  });
});
