/** Loss-curve plots: a log axis for positive losses, a linear one when a loss is negative (−NCC). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lossPlotSvg } from '../../src/models/training/plot.ts';

const polyline = (svg: string) => /<polyline [^>]*points="([^"]+)"/.exec(svg)?.[1].split(' ') ?? [];

test('positive losses: log axis; the point at 10× the minimum lies at the top', () => {
  const svg = lossPlotSvg('t', 'step', [
    {
      name: 'a',
      colour: 'red',
      points: [
        [0, 1],
        [1, 10],
      ],
    },
  ]);
  assert.match(svg, /loss \(log scale\)/);
  // y runs from 350 (bottom, 1) to 30 (top, 10).
  assert.deepEqual(polyline(svg), ['70.0,350.0', '700.0,30.0']);
});

test('negative losses: linear axis, the midpoint in the middle, clean tick labels', () => {
  const svg = lossPlotSvg('t', 'step', [
    {
      name: 'a',
      colour: 'red',
      points: [
        [0, -0.4],
        [0.5, -0.45],
        [1, -0.5],
      ],
    },
  ]);
  assert.doesNotMatch(svg, /log scale/);
  assert.deepEqual(polyline(svg), ['70.0,30.0', '385.0,190.0', '700.0,350.0']);
  assert.doesNotMatch(svg, /0000000/);
  assert.match(svg, />0\.6</);
});
