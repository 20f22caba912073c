/* global document, window, fetch, setInterval, clearInterval, performance, Option */
/**
 * The viewer page: three NiiVue views (fixed, moving, fixed against warped moving) whose crosshairs
 * follow each other, the points table, and click to correspond. diffreg speaks LPS world mm, NiiVue
 * the NIfTI's RAS: every point crossing between them goes through `flip`.
 */
import { MULTIPLANAR_TYPE, NVImage, Niivue, SHOW_RENDER } from '/niivue.js';

/** LPS ↔ RAS: x and y change sign (the same operation both ways). */
const flip = (p) => [-p[0], -p[1], p[2]];

const $ = (id) => document.getElementById(id);
const setStatus = (text) => ($('status').textContent = text);

async function getJson(url, init) {
  const response = await fetch(url, init);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ?? response.statusText);
  return body;
}

/** Label colours, cycled: distinct hues that read on a grey image. */
const PALETTE = [
  [230, 25, 75],
  [60, 180, 75],
  [255, 225, 25],
  [0, 130, 200],
  [245, 130, 48],
  [145, 30, 180],
  [70, 240, 240],
  [240, 50, 230],
  [210, 245, 60],
  [250, 190, 212],
  [0, 128, 128],
  [170, 110, 40],
];

/** A 256-entry colour map with one flat colour per label 1..count (cal_min 0.5, cal_max count + 0.5). */
function labelColormap(count) {
  const map = { R: [], G: [], B: [], A: [], I: [] };
  for (let i = 0; i < 256; i++) {
    const label = Math.min(count, Math.floor((i / 256) * count) + 1);
    const [r, g, b] = PALETTE[(label - 1) % PALETTE.length];
    map.R.push(r);
    map.G.push(g);
    map.B.push(b);
    map.A.push(i === 0 ? 0 : 255);
    map.I.push(i);
  }
  return map;
}

const COLORMAPS = {
  // NiiVue's gray fades to half transparent at its top (for volume rendering); an image drawn over
  // another (blend, checkerboard) must cover it.
  'diffreg-gray': { R: [0, 255], G: [0, 255], B: [0, 255], A: [255, 255], I: [0, 255] },
  // det J over [0, 2]: folded voxels (det J ≤ 0) bright green; compression blue, expansion red, 1 clear.
  // Clear from 0.9 to 1.1, opaque from 0.5 down and 1.5 up.
  'diffreg-jacobian': {
    R: [0, 0, 20, 120, 255, 255, 190],
    G: [255, 40, 90, 170, 150, 40, 0],
    B: [0, 255, 255, 255, 120, 30, 0],
    A: [255, 255, 255, 0, 0, 255, 255],
    I: [0, 3, 64, 115, 141, 192, 255],
  },
  // warped − fixed over [−1, 1] (display-window units): blue where fixed is brighter, red where warped is.
  'diffreg-difference': {
    R: [60, 0, 255],
    G: [140, 0, 70],
    B: [255, 0, 30],
    A: [255, 255, 255],
    I: [0, 128, 255],
  },
};

/** How each kind of volume is drawn (NiiVue image options). */
function look(key, v, labelCount) {
  const [lo, hi] = v.window;
  const base = { url: v.route, name: `${key}.nii.gz`, cal_min: lo, cal_max: hi };
  switch (v.kind) {
    case 'image':
    case 'checkerboard':
      return { ...base, colormap: 'diffreg-gray', colorbarVisible: false };
    case 'displacement':
      // Below 2 % of the largest displacement the overlay stays clear: the image shows.
      return { ...base, colormap: 'warm', cal_min: 0.02 * hi };
    case 'jacobian':
      return { ...base, colormap: 'diffreg-jacobian' };
    case 'difference':
      return { ...base, colormap: 'diffreg-difference' };
    case 'labels':
      return { ...base, colormap: 'diffreg-labels', cal_min: 0.5, cal_max: labelCount + 0.5 };
  }
  throw new Error(`unknown volume kind ${v.kind}`);
}

/** The overlays a view can show, by volume name: maps with a colour bar (the images have none). */
const OVERLAY_TITLES = {
  difference: 'warped − fixed',
  displacement: '|u| (mm)',
  jacobian: 'det J (green: folded)',
  labels: 'fixed labels',
  'warped-labels': 'warped moving labels',
  'moving-labels': 'moving labels',
  similarity: 'similarity of the clicked point',
};

/** A NiiVue view in the canvas: the three orthogonal slices, a colour bar for visible overlays. */
async function makeView(canvasId, volumes, markerMm) {
  const nv = new Niivue({
    backColor: [0, 0, 0, 1],
    isColorbar: true,
    multiplanarShowRender: SHOW_RENDER.NEVER,
    multiplanarLayout: MULTIPLANAR_TYPE.GRID,
    crosshairColor: [1, 0.75, 0, 0.9],
    crosshairGap: 8,
    // Points within this distance of a slice are drawn on it.
    meshThicknessOn2D: 2 * markerMm,
    dragAndDropEnabled: false,
    logLevel: 'error',
  });
  await nv.attachTo(canvasId);
  for (const [name, map] of Object.entries(COLORMAPS)) nv.addColormap(name, map);
  if (volumes.labelCount) nv.addColormap('diffreg-labels', labelColormap(volumes.labelCount));
  await nv.loadVolumes(volumes.list);
  nv.setSliceType(nv.sliceTypeMultiplanar);
  return nv;
}

/** Moves a view's crosshair to a world point (RAS mm), as NiiVue's own view linking does. */
function goTo(nv, rasMm) {
  nv.scene.crosshairPos = nv.mm2frac(rasMm);
  nv.drawScene();
}

/** Shows one overlay of a view (by volume name) at `opacity`, the others hidden; a colour bar for maps. */
function showOverlay(nv, name, opacity) {
  nv.volumes.forEach((v, i) => {
    if (i === 0) return;
    const shown = v.name === `${name}.nii.gz`;
    v.colorbarVisible = shown && name in OVERLAY_TITLES;
    nv.setOpacity(i, shown ? opacity : 0);
  });
}

function fillSelect(select, names) {
  select.replaceChildren(
    ...['none', ...names].map((name) => new Option(name === 'none' ? 'none' : OVERLAY_TITLES[name], name)),
  );
}

/** Colour of the points: by error to the truth when known, else by confidence, else one colour. */
function colouring(rows) {
  const errors = rows.map((r) => r.errorMm).filter((e) => e !== undefined && e !== null);
  if (errors.length) {
    const max = Math.max(1, ...errors);
    return { name: 'error to the truth (mm)', value: (r) => r.errorMm ?? 0, min: 0, max, map: 'warm' };
  }
  if (rows.some((r) => typeof r.confidence === 'number'))
    return { name: 'confidence', value: (r) => r.confidence ?? 0, min: 0, max: 1, map: 'viridis' };
  return { name: '', value: () => 1, min: 0, max: 1, map: 'warm' };
}

/** The points as a NiiVue connectome: spheres, and lines from each result to its truth. */
function connectome(name, nodes, edges, colours, radiusMm) {
  return {
    name,
    nodeColormap: colours.map,
    nodeColormapNegative: colours.map,
    nodeMinColor: colours.min,
    nodeMaxColor: colours.max,
    nodeScale: radiusMm,
    edgeColormap: colours.map,
    edgeColormapNegative: colours.map,
    // An edge's radius is its value times edgeScale: errors up to `max` stay under 0.4 voxel.
    edgeMin: 0,
    edgeMax: colours.max,
    edgeScale: (0.4 * radiusMm) / colours.max,
    showLegend: false,
    nodes,
    edges,
  };
}

function node(p, value, size) {
  const [x, y, z] = flip(p);
  return { name: '', x, y, z, colorValue: value, sizeValue: size };
}

/** Shows a connectome without its colour bar: the page's own key (`pointsKey`) explains the colours. */
function loadPoints(nv, json) {
  const mesh = nv.loadConnectomeAsMesh(json);
  mesh.colorbarVisible = false;
  nv.addMesh(mesh);
}

/** The colours of the points as a gradient with its range, from NiiVue's own colour table. */
function pointsKey(nv, colours) {
  const lut = nv.colormap(colours.map);
  const stops = [0, 64, 128, 192, 255].map((i) => `rgb(${lut[4 * i]},${lut[4 * i + 1]},${lut[4 * i + 2]})`);
  const bar = document.createElement('span');
  bar.className = 'gradient';
  bar.style.background = `linear-gradient(to right, ${stops.join(', ')})`;
  $('points-key').replaceChildren(`coloured by ${colours.name}: ${colours.min}`, bar, fmt(colours.max, 1));
}

function showPoints(views, rows, radiusMm) {
  if (!rows.length) return;
  const colours = colouring(rows);
  if (colours.name) pointsKey(views.fixed, colours);
  loadPoints(
    views.fixed,
    connectome(
      'fixed points',
      rows.map((r) => node(r.fixed, colours.value(r), 1)),
      [],
      colours,
      radiusMm,
    ),
  );
  const nodes = [];
  const edges = [];
  for (const r of rows) {
    const value = colours.value(r);
    if (r.moving) nodes.push(node(r.moving, value, 1));
    if (r.truth) nodes.push(node(r.truth, value, 0.6));
    if (r.moving && r.truth)
      edges.push({ first: nodes.length - 2, second: nodes.length - 1, colorValue: value });
  }
  if (nodes.length) loadPoints(views.moving, connectome('moving points', nodes, edges, colours, radiusMm));
}

const fmt = (v, digits = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–');
const fmtPoint = (p) => (p ? p.map((v) => v.toFixed(1)).join(', ') : '–');

const COLUMNS = [
  { title: '#', value: (r) => r.index, text: (r) => String(r.index) },
  { title: 'source', value: (r) => r.source, text: (r) => r.source },
  { title: 'fixed (LPS mm)', value: (r) => r.fixed[2], text: (r) => fmtPoint(r.fixed) },
  { title: 'result (LPS mm)', value: (r) => r.moving?.[2], text: (r) => fmtPoint(r.moving) },
  { title: 'truth (LPS mm)', value: (r) => r.truth?.[2], text: (r) => fmtPoint(r.truth) },
  { title: 'error (mm)', value: (r) => r.errorMm, text: (r) => fmt(r.errorMm, 2) },
  { title: 'confidence', value: (r) => r.confidence, text: (r) => fmt(r.confidence, 2) },
];

/** The points table: sortable by any column (click its header), a row click jumps the views there. */
function pointsTable(rows, jump) {
  const order = { column: 0, direction: 1 };
  const head = document.createElement('tr');
  COLUMNS.forEach((c, i) => {
    const th = document.createElement('th');
    th.textContent = c.title;
    th.addEventListener('click', () => {
      order.direction = order.column === i ? -order.direction : 1;
      order.column = i;
      render();
    });
    head.append(th);
  });
  $('points').tHead.replaceChildren(head);
  let selected;
  function render() {
    const { value } = COLUMNS[order.column];
    const sorted = [...rows].sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      // Rows without the value go last, whichever the direction.
      if (x === undefined || x === null) return y === undefined || y === null ? a.index - b.index : 1;
      if (y === undefined || y === null) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * order.direction;
    });
    [...head.children].forEach((th, i) =>
      th.setAttribute(
        'aria-sort',
        i === order.column ? (order.direction > 0 ? 'ascending' : 'descending') : 'none',
      ),
    );
    $('points').tBodies[0].replaceChildren(
      ...sorted.map((r) => {
        const tr = document.createElement('tr');
        tr.classList.toggle('selected', r === selected);
        for (const c of COLUMNS) tr.insertCell().textContent = c.text(r);
        tr.addEventListener('click', () => {
          selected = r;
          jump(r);
          render();
        });
        return tr;
      }),
    );
    $('points-title').textContent = `Points (${rows.length})`;
  }
  render();
  return render;
}

function describeAnswer(a, roundTripMs) {
  const where =
    a.search === 'local'
      ? `local search within ${a.radiusMm} mm of p + u(p)`
      : 'global search over the moving image';
  return (
    `<b>match</b> (${fmtPoint(a.moving)}) LPS mm · <b>confidence ${fmt(a.confidence, 2)}</b> · ` +
    `similarity ${fmt(a.similarity, 3)} (next peak ${fmt(a.secondPeak, 3)}) · back-match ${fmt(a.backErrorMm, 1)} mm · ` +
    `${where} · ${(a.seconds * 1000).toFixed(0)} ms on the server, ${roundTripMs.toFixed(0)} ms in all`
  );
}

async function main() {
  const scene = await getJson('/api/scene');
  const t = scene.titles;
  $('titles').textContent = `fixed ${t.fixed} · moving ${t.moving}${t.field ? ` · field ${t.field}` : ''}`;
  // Markers of 0.6 voxel, and at least 0.8 % of the field of view: visible on fine CT grids too.
  const { dims, spacing } = scene.fixedGrid;
  const radiusMm = Math.max(
    0.6 * Math.max(...spacing),
    0.008 * Math.max(...dims.map((n, a) => n * spacing[a])),
  );
  const has = (key) => key in scene.volumes;
  const volumes = (keys) => ({
    list: keys.filter(has).map((k) => ({ ...look(k, scene.volumes[k], scene.labels), opacity: 0 })),
    labelCount: scene.labels,
  });
  const fixedOverlays = ['displacement', 'jacobian', 'labels', 'warped-labels'].filter(has);
  const movingOverlays = ['moving-labels'].filter(has);
  const views = {
    fixed: await makeView('fixed-view', volumes(['fixed', ...fixedOverlays]), radiusMm),
    moving: await makeView('moving-view', volumes(['moving', ...movingOverlays]), radiusMm),
    compare: await makeView(
      'compare-view',
      volumes(['fixed', 'warped', 'checkerboard', 'difference']),
      radiusMm,
    ),
  };
  for (const nv of Object.values(views)) nv.setOpacity(0, 1);

  const fixedSelect = $('fixed-overlay');
  fillSelect(fixedSelect, fixedOverlays);
  const applyFixed = () => showOverlay(views.fixed, fixedSelect.value, Number($('fixed-opacity').value));
  fixedSelect.addEventListener('change', applyFixed);
  $('fixed-opacity').addEventListener('input', applyFixed);
  const movingSelect = $('moving-overlay');
  fillSelect(movingSelect, movingOverlays);
  const applyMoving = () => showOverlay(views.moving, movingSelect.value, 0.7);
  movingSelect.addEventListener('change', applyMoving);
  applyFixed();
  applyMoving();

  // Blend: the warped image over the fixed one at the slider's weight; the other modes cover both.
  const applyCompare = () => {
    const mode = document.querySelector('input[name=compare]:checked').value;
    showOverlay(
      views.compare,
      mode === 'blend' ? 'warped' : mode,
      mode === 'blend' ? Number($('blend').value) : 1,
    );
  };
  document.querySelectorAll('input[name=compare]').forEach((r) => r.addEventListener('change', applyCompare));
  $('blend').addEventListener('input', applyCompare);
  applyCompare();

  const rows = scene.points.map((p, i) => ({ ...p, index: i + 1, source: scene.pointsSource ?? 'landmark' }));
  showPoints(views, rows, radiusMm);
  const renderTable = pointsTable(rows, (r) => {
    goTo(views.fixed, flip(r.fixed));
    goTo(views.compare, flip(r.fixed));
    goTo(views.moving, flip(r.moving ?? r.truth ?? r.fixed));
  });

  // The fixed and comparison views share the fixed grid: their crosshairs follow each other. The
  // moving view follows at the same world point until a click's match moves it to the match.
  const follow = (from, others) =>
    from.addEventListener('locationChange', (e) => others.forEach((nv) => goTo(nv, e.detail.mm.slice(0, 3))));
  follow(views.fixed, [views.compare, views.moving]);
  follow(views.compare, [views.fixed]);

  const state = { answers: [], similarity: undefined, latest: 0, clicks: 0 };
  window.diffregViewer = { views, state };

  // A left click on the fixed view (not a scroll, a key or a drag of the contrast) asks for its match.
  let clicked;
  views.fixed.canvas.addEventListener('pointerdown', (e) => (clicked = e.button === 0 ? null : undefined));
  views.fixed.addEventListener('locationChange', (e) => {
    if (clicked === null) clicked = e.detail.mm.slice(0, 3);
  });
  views.fixed.addEventListener('mouseUp', () => {
    if (clicked) correspond(clicked);
    clicked = undefined;
  });

  async function correspond(rasMm) {
    const sequence = ++state.latest;
    const started = performance.now();
    setStatus('matching…');
    const poll = setInterval(async () => {
      const s = await getJson('/api/status');
      if (s.state === 'computing')
        setStatus(
          `computing the descriptors of the pair, once: ${s.stage} (${s.done}/${s.total}), ${s.seconds.toFixed(0)} s`,
        );
    }, 300);
    try {
      const answer = await getJson('/api/match', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ point: flip(rasMm) }),
      });
      if (sequence !== state.latest) return;
      const roundTrip = performance.now() - started;
      state.answers.push(answer);
      goTo(views.moving, flip(answer.moving));
      const map = await NVImage.loadFromUrl({
        url: answer.map,
        name: 'similarity.nii.gz',
        colormap: 'hot',
        cal_min: answer.mapWindow[0],
        cal_max: answer.mapWindow[1],
        opacity: 0.7,
      });
      if (state.similarity) views.moving.removeVolume(state.similarity);
      state.similarity = map;
      views.moving.addVolume(map);
      if (!movingSelect.querySelector('option[value=similarity]'))
        fillSelect(movingSelect, [...movingOverlays, 'similarity']);
      movingSelect.value = 'similarity';
      applyMoving();
      $('answer').innerHTML = describeAnswer(answer, roundTrip);
      rows.push({
        index: rows.length + 1,
        source: `click ${++state.clicks}`,
        fixed: answer.fixed,
        moving: answer.moving,
        confidence: answer.confidence,
      });
      renderTable();
      setStatus('ready');
    } catch (e) {
      if (sequence === state.latest) setStatus(`no match: ${e.message}`);
    } finally {
      clearInterval(poll);
    }
  }

  setStatus('ready — click the fixed image');
  document.body.dataset.state = 'ready';
}

main().catch((e) => {
  setStatus(`error: ${e.message}`);
  document.body.dataset.state = 'error';
});
