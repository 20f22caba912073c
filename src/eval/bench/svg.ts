/** Small inline-SVG charts for the HTML report: box plots per method and bar charts with error bars. */
import { percentile } from '../../util/stats.ts';

/** Chart size and margins in pixels. */
const [WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM] = [460, 240, 56, 12, 28, 44];
const COLOURS = ['#4c72b0', '#dd8452', '#55a868', '#c44e52', '#8172b3', '#937860', '#da8bc3', '#8c8c8c'];

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** About five round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / 5;
  const step = [1, 2, 5, 10].map((m) => m * 10 ** Math.floor(Math.log10(raw))).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

/** Where group n is drawn: centre x, half width, colour. */
interface Slot {
  cx: number;
  half: number;
  colour: string;
}

/** Axes, grid lines, title and group names around the chart body drawn by `body`. */
function frame(
  { title, unit, names, lo, hi }: { title: string; unit: string; names: string[]; lo: number; hi: number },
  body: (y: (v: number) => number, slot: (n: number) => Slot) => string,
): string {
  const marks = ticks(lo, hi);
  const bottom = Math.min(lo, marks[0]);
  const top = Math.max(hi, marks.at(-1) as number);
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const y = (v: number) => TOP + plotHeight * (1 - (v - bottom) / (top - bottom || 1));
  const band = (WIDTH - LEFT - RIGHT) / Math.max(names.length, 1);
  const x = (n: number) => LEFT + band * (n + 0.5);
  const slot = (n: number): Slot => ({
    cx: x(n),
    half: Math.min(band * 0.3, 40),
    colour: COLOURS[n % COLOURS.length],
  });
  const axis = marks
    .map(
      (m) =>
        `<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${y(m).toFixed(1)}" y2="${y(m).toFixed(1)}" stroke="#e4e4e4"/>` +
        `<text x="${LEFT - 4}" y="${(y(m) + 4).toFixed(1)}" text-anchor="end">${m}</text>`,
    )
    .join('');
  const labels = names
    .map(
      (name, n) =>
        `<text x="${x(n).toFixed(1)}" y="${HEIGHT - BOTTOM + 16}" text-anchor="middle">${escapeXml(name)}</text>`,
    )
    .join('');
  const heading = `${escapeXml(title)}${unit ? ` (${escapeXml(unit)})` : ''}`;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="11">` +
    `<text x="${WIDTH / 2}" y="16" text-anchor="middle" font-weight="bold">${heading}</text>${axis}${labels}` +
    `<line x1="${LEFT}" x2="${LEFT}" y1="${TOP}" y2="${HEIGHT - BOTTOM}" stroke="#444"/>${body(y, slot)}</svg>`
  );
}

export interface BoxGroup {
  name: string;
  values: number[];
}

/**
 * Box plot per group: box from the 25th to the 75th percentile with the median, whiskers to the
 * furthest values within 1.5 IQR of the box (Tukey), the values beyond drawn as dots. Non-finite
 * values are left out.
 */
export function boxPlotSvg(title: string, unit: string, groups: BoxGroup[]): string {
  const cleaned = groups.map((g) => ({
    name: g.name,
    values: g.values.filter(Number.isFinite).sort((a, b) => a - b),
  }));
  const all = cleaned.flatMap((g) => g.values);
  const lo = all.length ? Math.min(...all) : 0;
  const hi = all.length ? Math.max(...all) : 1;
  const names = cleaned.map((g) => g.name);
  return frame({ title, unit, names, lo, hi }, (y, slot) =>
    cleaned
      .map((g, n) => {
        if (g.values.length === 0) return '';
        const v = g.values;
        const [q1, median, q3] = [25, 50, 75].map((q) => percentile(v, q));
        const reach = 1.5 * (q3 - q1);
        const low = v.find((e) => e >= q1 - reach) as number;
        const high = [...v].reverse().find((e) => e <= q3 + reach) as number;
        const { cx, half, colour } = slot(n);
        const outliers = v
          .filter((e) => e < low || e > high)
          .map(
            (e) =>
              `<circle cx="${cx.toFixed(1)}" cy="${y(e).toFixed(1)}" r="2" fill="none" stroke="${colour}"/>`,
          )
          .join('');
        return (
          `<line x1="${cx.toFixed(1)}" x2="${cx.toFixed(1)}" y1="${y(low).toFixed(1)}" y2="${y(high).toFixed(1)}" stroke="#333"/>` +
          `<rect x="${(cx - half).toFixed(1)}" y="${y(q3).toFixed(1)}" width="${(2 * half).toFixed(1)}" height="${Math.max(y(q1) - y(q3), 0.5).toFixed(1)}" fill="${colour}" fill-opacity="0.6" stroke="#333"/>` +
          `<line x1="${(cx - half).toFixed(1)}" x2="${(cx + half).toFixed(1)}" y1="${y(median).toFixed(1)}" y2="${y(median).toFixed(1)}" stroke="#000" stroke-width="2"/>` +
          outliers
        );
      })
      .join(''),
  );
}

export interface BarGroup {
  name: string;
  mean: number;
  sd: number;
}

/** Bars of the mean per group with ±1 SD error bars (SD left out when not finite). */
export function barChartSvg(title: string, unit: string, groups: BarGroup[]): string {
  const tops = groups.map((g) => g.mean + (Number.isFinite(g.sd) ? g.sd : 0)).filter(Number.isFinite);
  const hi = tops.length ? Math.max(...tops) : 1;
  const names = groups.map((g) => g.name);
  return frame({ title, unit, names, lo: 0, hi }, (y, slot) =>
    groups
      .map((g, n) => {
        if (!Number.isFinite(g.mean)) return '';
        const { cx, half, colour } = slot(n);
        const sd = Number.isFinite(g.sd)
          ? `<line x1="${cx.toFixed(1)}" x2="${cx.toFixed(1)}" y1="${y(g.mean - g.sd).toFixed(1)}" y2="${y(g.mean + g.sd).toFixed(1)}" stroke="#000"/>`
          : '';
        return (
          `<rect x="${(cx - half).toFixed(1)}" y="${y(g.mean).toFixed(1)}" width="${(2 * half).toFixed(1)}" height="${(y(0) - y(g.mean)).toFixed(1)}" fill="${colour}"/>` +
          sd +
          `<text x="${cx.toFixed(1)}" y="${(y(g.mean) - 4).toFixed(1)}" text-anchor="middle">${g.mean.toPrecision(3)}</text>`
        );
      })
      .join(''),
  );
}
