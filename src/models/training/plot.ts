/**
 * A small SVG line-plot writer for loss curves (several named series). The y axis is logarithmic when
 * every value is positive (losses that fall by orders of magnitude), linear otherwise (similarity
 * losses such as −NCC are negative).
 */

export interface Series {
  name: string;
  colour: string;
  points: readonly (readonly [number, number])[];
}

const W = 720;
const H = 400;
const M = { left: 70, right: 20, top: 30, bottom: 50 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Round ticks between lo and hi (about `n` of them). */
function ticks(lo: number, hi: number, n: number): number[] {
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) as number;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(v);
  return out;
}

/** A tick value as a short label (no floating-point tails such as 0.6000000000000001). */
const label = (v: number) => String(Number(v.toPrecision(6)));

/** The plot as an SVG document; non-finite values are left out. */
export function lossPlotSvg(title: string, xLabel: string, series: readonly Series[]): string {
  const finite = (p: readonly [number, number]) => Number.isFinite(p[0]) && Number.isFinite(p[1]);
  const all = series.flatMap((s) => s.points.filter(finite));
  const log = all.every(([, y]) => y > 0);
  const f = (y: number) => (log ? Math.log10(y) : y);
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => f(y));
  const [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (y1 - y0 < 1e-6) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const px = (x: number) => M.left + ((x - x0) / (x1 - x0 || 1)) * (W - M.left - M.right);
  const py = (ly: number) => H - M.bottom - ((ly - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<line x1="${M.left}" y1="${H - M.bottom}" x2="${W - M.right}" y2="${H - M.bottom}" stroke="black"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${H - M.bottom}" stroke="black"/>`,
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text x="16" y="${H / 2}" text-anchor="middle" transform="rotate(-90 16 ${H / 2})">loss${log ? ' (log scale)' : ''}</text>`,
  ];
  for (const t of ticks(x0, x1, 6)) {
    parts.push(
      `<text x="${px(t).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle">${label(t)}</text>`,
    );
  }
  for (const t of ticks(y0, y1, 5)) {
    const y = py(t).toFixed(1);
    parts.push(`<line x1="${M.left}" y1="${y}" x2="${W - M.right}" y2="${y}" stroke="#ddd"/>`);
    parts.push(
      `<text x="${M.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${log ? (10 ** t).toPrecision(2) : label(t)}</text>`,
    );
  }
  series.forEach((s, i) => {
    const pts = s.points.filter(finite);
    if (pts.length) {
      const d = pts.map(([x, y]) => `${px(x).toFixed(1)},${py(f(y)).toFixed(1)}`).join(' ');
      parts.push(`<polyline fill="none" stroke="${s.colour}" stroke-width="1.5" points="${d}"/>`);
    }
    const ly = M.top + 8 + 16 * i;
    parts.push(
      `<line x1="${W - M.right - 150}" y1="${ly}" x2="${W - M.right - 125}" y2="${ly}" stroke="${s.colour}" stroke-width="2"/>`,
    );
    parts.push(`<text x="${W - M.right - 120}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
