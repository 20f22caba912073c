/**
 * For the viewer's tests: a viewer on a small thorax phantom for the viewer's tests: a breathing pair with known landmarks, a
 * field that recovers 70 % of the true motion (so p + u(p) misses the truth by a few mm and the local
 * search has something to find), the lung mask as labels, and the embedded default model.
 */
import { createServer } from 'node:net';
import { makeThoraxPhantom } from '../../src/eval/phantom.ts';
import { makeBreathingPair } from '../../src/geometry/synthetic.ts';
import { Correspondence } from '../../src/viewer/correspond.ts';
import { buildScene, landmarkRows } from '../../src/viewer/scene.ts';
import { startViewer } from '../../src/viewer/server.ts';

/** The local search radius of the tests (mm): the largest true motion is about 15 mm. */
export const RADIUS_MM = 20;

export async function phantomViewer() {
  const phantom = makeThoraxPhantom({ dims: [64, 64, 48], spacing: [5.2, 5.2, 6.4], seed: 1 });
  const pair = makeBreathingPair(phantom.image, {
    amplitude: 15,
    mask: phantom.lungMask,
    points: phantom.landmarks,
    labels: phantom.lungMask,
    seed: 1,
  });
  const field = pair.field.withData(
    pair.field.data.map((u) => 0.7 * u),
    3,
  );
  const scene = buildScene(
    {
      fixed: phantom.image,
      moving: pair.moving,
      field,
      labels: phantom.lungMask,
      movingLabels: pair.movingLabels,
      points: landmarkRows(pair.fixedPoints, { truth: pair.movingPoints, field }),
      pointsSource: 'p + u(p)',
      titles: { fixed: 'phantom fixed', moving: 'phantom moving', field: '0.7 × true field' },
    },
    { kind: 'local', radiusMm: RADIUS_MM },
  );
  const correspondence = await Correspondence.open({
    fixed: phantom.image,
    moving: pair.moving,
    field,
    radiusMm: RADIUS_MM,
    model: {},
  });
  const viewer = await startViewer(scene, phantom.image, correspondence, { host: '127.0.0.1', port: 0 });
  return { viewer, scene, pair, fixed: phantom.image };
}

/** Resolves once something else could listen on `port` (the viewer freed it). */
export async function assertPortFree(port: number): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(port, '127.0.0.1', () => resolve());
  });
  await new Promise((resolve) => probe.close(resolve));
}
