/**
 * The viewer's server as a client meets it: what it serves, what it refuses (path traversal, unknown
 * routes, malformed or oversized clicks, foreign hosts) while it keeps running, concurrent clicks, and
 * a port freed on close. Click latency once the descriptors are made is printed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { MAX_BODY_BYTES } from '../../src/viewer/server.ts';
import { assertPortFree, phantomViewer } from './phantom-viewer.ts';

let opened: Awaited<ReturnType<typeof phantomViewer>>;
let closed = false;

before(async () => {
  opened = await phantomViewer();
});

after(async () => {
  if (!closed) await opened.viewer.close();
});

interface Reply {
  status: number;
  type: string | undefined;
  body: Buffer;
}

/** A raw request: the path goes out exactly as written (no URL normalisation, unlike fetch). */
function request(
  path: string,
  options: { method?: string; body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: opened.viewer.port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: res.headers['content-type'],
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    // A refused upload may close the connection before the body is written: the reply still comes.
    req.on('error', (e: NodeJS.ErrnoException) =>
      e.code === 'EPIPE' || e.code === 'ECONNRESET' ? undefined : reject(e),
    );
    req.end(options.body);
  });
}

const click = (body: unknown) =>
  request('/api/match', {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'Content-Type': 'application/json' },
  });

async function assertAlive() {
  const r = await request('/api/scene');
  assert.equal(r.status, 200, 'the server still answers');
}

test('serves its page, NiiVue, the scene and every volume it names', async () => {
  const page = await request('/');
  assert.equal(page.status, 200);
  assert.match(page.body.toString(), /<canvas id="fixed-view">/);
  const niivue = await request('/niivue.js');
  assert.equal(niivue.status, 200);
  assert.ok(niivue.body.length > 1_000_000, 'the NiiVue bundle');
  const scene = JSON.parse((await request('/api/scene')).body.toString());
  const names = Object.keys(scene.volumes).sort();
  assert.deepEqual(names, [
    'checkerboard',
    'difference',
    'displacement',
    'fixed',
    'jacobian',
    'labels',
    'moving',
    'moving-labels',
    'warped',
    'warped-labels',
  ]);
  for (const name of names) {
    const r = await request(scene.volumes[name].route);
    assert.equal(r.status, 200, name);
    assert.deepEqual([...r.body.subarray(0, 2)], [0x1f, 0x8b], `${name} is gzip`);
  }
  assert.equal(scene.points.length, opened.pair.fixedPoints.length);
  const head = await request('/volumes/fixed.nii.gz', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
});

test('path traversal, encoded or not, finds no file: 404 and a JSON error', async () => {
  const attempts = [
    '/volumes/../../etc/passwd',
    '/volumes/..%2f..%2f..%2fetc%2fpasswd',
    '/volumes/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    '/volumes/%252e%252e%252fetc%252fpasswd',
    '/volumes/..\\..\\..\\etc\\passwd',
    '/volumes/..%5c..%5cetc%5cpasswd',
    '/volumes/fixed.nii.gz/../../../../etc/passwd',
    '/volumes/fixed.nii.gz%00.txt',
    '//etc/passwd',
    '/%2e%2e/%2e%2e/package.json',
    '/../src/viewer/server.ts',
    '/viewer.js/..%2fserver.ts',
    '/node_modules/@niivue/niivue/package.json',
    '/page/index.html',
  ];
  for (const path of attempts) {
    const r = await request(path);
    assert.equal(r.status, 404, path);
    assert.equal(r.type, 'application/json', path);
    assert.match(JSON.parse(r.body.toString()).error, /not found$/, path);
    assert.doesNotMatch(r.body.toString(), /root:|"name": "diffreg"|import /, path);
  }
  await assertAlive();
});

test('unknown routes are 404, wrong methods 405, foreign hosts 403', async () => {
  for (const path of [
    '/volumes/',
    '/volumes/nothing.nii.gz',
    '/api',
    '/api/matches',
    '/favicon.ico',
    '/index.html',
  ])
    assert.equal((await request(path)).status, 404, path);
  assert.equal((await request('/api/match')).status, 405);
  assert.equal((await request('/volumes/fixed.nii.gz', { method: 'POST', body: '{}' })).status, 405);
  assert.equal((await request('/', { method: 'DELETE' })).status, 405);
  const foreign = await request('/', { headers: { Host: 'attacker.example:80' } });
  assert.equal(foreign.status, 403, 'a page of another site cannot reach the viewer by DNS rebinding');
  assert.equal((await request('/', { headers: { Host: `localhost:${opened.viewer.port}` } })).status, 200);
  assert.equal((await request(`/${'a'.repeat(5000)}`)).status, 414);
  await assertAlive();
});

test('malformed clicks are 400, a wrong type 415, an oversized body 413, and the server goes on', async () => {
  const inside = opened.pair.fixedPoints[0];
  const cases: [string | object, RegExp][] = [
    ['{"point": [1, 2', /^body: malformed JSON$/],
    ['', /^body: malformed JSON$/],
    ['null', /^point: expected three finite numbers/],
    [{ point: [1, 2] }, /^point: expected three finite numbers/],
    [{ point: [1, 2, 'x'] }, /^point: expected three finite numbers/],
    [{ point: [1, 2, null] }, /^point: expected three finite numbers/],
    ['{"point": [1, 2, 1e999]}', /^point: expected three finite numbers/],
    [{ pt: inside }, /^point: expected three finite numbers/],
    [{ point: [1e5, 0, 0] }, /^point: outside the fixed image$/],
  ];
  for (const [body, message] of cases) {
    const r = await click(body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match(JSON.parse(r.body.toString()).error, message);
  }
  const plain = await request('/api/match', { method: 'POST', body: JSON.stringify({ point: inside }) });
  assert.equal(plain.status, 415);
  const huge = await click(JSON.stringify({ point: inside, pad: 'x'.repeat(MAX_BODY_BYTES * 25) }));
  assert.equal(huge.status, 413);
  await assertAlive();
});

test('concurrent clicks give the answers of clicks made one at a time; latency once described', async () => {
  const [a, b] = [opened.pair.fixedPoints[174], opened.pair.fixedPoints[20]];
  // Four at once, before any descriptor exists: the first makes them, the others wait their turn.
  const together = await Promise.all([a, b, a, b].map((point) => click({ point })));
  for (const r of together) assert.equal(r.status, 200, r.body.toString());
  const answers = together.map((r) => JSON.parse(r.body.toString()));
  assert.deepEqual(answers[2].moving, answers[0].moving);
  assert.deepEqual(answers[3].moving, answers[1].moving);
  assert.notDeepEqual(answers[0].moving, answers[1].moving);
  const times: number[] = [];
  for (const point of [a, b, a]) {
    const started = performance.now();
    const r = await click({ point });
    times.push(performance.now() - started);
    const answer = JSON.parse(r.body.toString());
    assert.deepEqual(answer.moving, (point === a ? answers[0] : answers[1]).moving, 'the same answer alone');
    assert.equal(answer.search, 'local');
    assert.ok(answer.confidence >= 0 && answer.confidence <= 1);
    const map = await request(answer.map);
    assert.equal(map.status, 200, 'its similarity map is served');
  }
  console.log(
    `# click latency once the descriptors are made: ${times.map((t) => t.toFixed(0)).join(', ')} ms`,
  );
  assert.ok(Math.min(...times) < 2000, `clicks take ${times.join(', ')} ms`);
  const status = JSON.parse((await request('/api/status')).body.toString());
  assert.equal(status.state, 'ready');
});

test('close frees the port', async () => {
  const { port } = opened.viewer;
  await opened.viewer.close();
  closed = true;
  await assertPortFree(port);
});
