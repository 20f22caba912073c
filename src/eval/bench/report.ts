/**
 * Benchmark results on disk: `results.json` (everything), `cases.csv` (one row per case and
 * method), `labels.csv` (Dice and HD95 per label, Dice per label union), `cases/<case>.json`,
 * `summary.md` (tables) and `report.html` (self-contained: inline SVG plots and base64 PNG overlays).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../util/atomic.ts';
import { summarize, type Summary } from '../../util/stats.ts';
import { METRICS, metricValue, type CaseScores, type MetricKey } from './evaluate.ts';
import { barChartSvg, boxPlotSvg, escapeXml } from './svg.ts';

export interface RunInfo {
  /** ISO time the run started. */
  date: string;
  commandLine: string[];
  seed: number;
  quick: boolean;
  versions: Record<string, string>;
  machine: {
    cpu: string;
    cores: number;
    ramGb: number;
    os: string;
    loadAverageStart: number[];
    loadAverageEnd?: number[];
  };
  wallSeconds?: number;
}

export interface MethodAggregate {
  method: string;
  /** Cases the method ran on, and how many of them failed. */
  cases: number;
  failures: number;
  /** Summary over cases of each scalar metric (cases without the metric left out). */
  metrics: Partial<Record<MetricKey, Summary>>;
  /** All landmark errors of all cases pooled (mm). */
  trePooled?: Summary;
  /** Mean over cases of Dice and HD95 per label. */
  dicePerLabel?: Record<string, number>;
  hd95PerLabel?: Record<string, number>;
  /** Mean over cases of the Dice of each label union, by name. */
  dicePerGroup?: Record<string, number>;
}

export interface BenchmarkReport {
  run: RunInfo;
  dataset: {
    name: string;
    description: string;
    citation: string;
    labelNames?: Record<string, string>;
    /** The label unions scored (name → member labels). */
    labelGroups?: Record<string, number[]>;
  };
  methods: { name: string; description: string }[];
  cases: CaseScores[];
  aggregate: MethodAggregate[];
  /** Overlay PNG files, relative to the results folder. */
  overlays: { caseId: string; method: string; file: string }[];
}

/** Label values ascending; names (label unions) compare equal, so they keep their first-seen order. */
const byLabel = (a: string, b: string) => Number(a) - Number(b) || 0;

function meanPerLabel(tables: (Record<string, number> | undefined)[]): Record<string, number> | undefined {
  const sums = new Map<string, { sum: number; count: number }>();
  for (const table of tables) {
    for (const [label, value] of Object.entries(table ?? {})) {
      if (!Number.isFinite(value)) continue;
      const entry = sums.get(label) ?? { sum: 0, count: 0 };
      entry.sum += value;
      entry.count++;
      sums.set(label, entry);
    }
  }
  if (sums.size === 0) return undefined;
  const out: Record<string, number> = {};
  for (const [label, { sum, count }] of [...sums].sort((a, b) => byLabel(a[0], b[0])))
    out[label] = sum / count;
  return out;
}

/** Per-method summaries over the cases (non-finite values, e.g. HD95 of a vanished label, left out). */
export function aggregate(cases: CaseScores[], methods: string[]): MethodAggregate[] {
  return methods.map((method) => {
    const mine = cases.filter((c) => c.method === method);
    const ok = mine.filter((c) => !c.error);
    const metrics: Partial<Record<MetricKey, Summary>> = {};
    for (const { key } of METRICS) {
      const values = ok
        .map((c) => metricValue(c, key))
        .filter((v): v is number => v !== undefined && Number.isFinite(v));
      if (values.length) metrics[key] = summarize(values);
    }
    const pooled = ok.flatMap((c) => c.tre?.errors ?? []);
    return {
      method,
      cases: mine.length,
      failures: mine.length - ok.length,
      metrics,
      trePooled: pooled.length ? summarize(pooled) : undefined,
      dicePerLabel: meanPerLabel(ok.map((c) => c.dice?.perLabel)),
      hd95PerLabel: meanPerLabel(ok.map((c) => c.hd95?.perLabel)),
      dicePerGroup: meanPerLabel(ok.map((c) => c.diceGroups)),
    };
  });
}

/** JSON with non-finite numbers written as null (JSON has no Infinity/NaN). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1) + '\n';
}

const csvNumber = (v: number | undefined) =>
  v === undefined
    ? ''
    : Number.isNaN(v)
      ? 'nan'
      : !Number.isFinite(v)
        ? v > 0
          ? 'inf'
          : '-inf'
        : String(Number(v.toPrecision(7)));
const csvText = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

export const CASE_COLUMNS = [
  'case', 'method', 'tre_mean', 'tre_sd', 'tre_p25', 'tre_p50', 'tre_p75', 'tre_initial', 'tre_points',
  'dice_mean', 'hd95_mean', 'percent_njd', 'sd_log_j', 'min_jacobian', 'seconds', 'peak_rss_mb',
  'dice_structures_mean', 'std_jacobian', 'tre_confident_mean', 'error',
] as const; // prettier-ignore

export function casesCsv(cases: CaseScores[]): string {
  const rows = cases.map((c) =>
    [
      csvText(c.caseId),
      csvText(c.method),
      ...[c.tre?.mean, c.tre?.sd, c.tre?.p25, c.tre?.p50, c.tre?.p75, c.tre?.initialMean, c.tre?.count].map(
        csvNumber,
      ),
      ...[
        c.dice?.mean,
        c.hd95?.mean,
        c.percentNonPositiveJacobian,
        c.sdLogJ,
        c.minJacobian,
        c.seconds,
        c.peakRssMb,
        c.diceStructuresMean,
        c.stdJacobian,
        c.treConfidentMean,
      ].map(csvNumber),
      csvText(c.error ?? ''),
    ].join(','),
  );
  return [CASE_COLUMNS.join(','), ...rows].join('\n') + '\n';
}

/** One row per case, method and label, then per label union (label: its members joined by +). */
export function labelsCsv(
  cases: CaseScores[],
  names: Record<string, string> = {},
  groups: Record<string, number[]> = {},
): string {
  const rows: string[] = [];
  for (const c of cases) {
    for (const label of Object.keys(c.dice?.perLabel ?? {})) {
      rows.push(
        [
          csvText(c.caseId),
          csvText(c.method),
          label,
          csvText(names[label] ?? ''),
          csvNumber(c.dice?.perLabel[label]),
          csvNumber(c.hd95?.perLabel[label]),
        ].join(','),
      );
    }
    for (const [group, value] of Object.entries(c.diceGroups ?? {})) {
      const members = groups[group]?.join('+') ?? '';
      rows.push(
        [csvText(c.caseId), csvText(c.method), members, csvText(group), csvNumber(value), ''].join(','),
      );
    }
  }
  return ['case,method,label,name,dice,hd95', ...rows].join('\n') + '\n';
}

const fixed = (v: number | undefined, digits: number) =>
  v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
const meanSd = (s: Summary | undefined, digits: number) =>
  s ? `${fixed(s.mean, digits)} ± ${fixed(s.sd, digits)}` : '–';

/** The summary rows: one per method, the columns that some method has. */
function summaryTable(report: BenchmarkReport): { header: string[]; rows: string[][] } {
  const has = (key: MetricKey) => report.aggregate.some((a) => a.metrics[key]);
  const header = ['method', 'cases'];
  const columns: ((a: MethodAggregate) => string)[] = [
    (a) => a.method,
    (a) => `${a.cases - a.failures}/${a.cases}`,
  ];
  if (has('treMean')) {
    header.push('TRE mean ± sd (mm)', 'TRE p25 / p50 / p75 (mm, cases)', 'TRE all points (mm)');
    columns.push(
      (a) => meanSd(a.metrics.treMean, 2),
      (a) =>
        a.metrics.treMean
          ? [a.metrics.treMean.p25, a.metrics.treMean.median, a.metrics.treMean.p75]
              .map((v) => fixed(v, 2))
              .join(' / ')
          : '–',
      (a) => meanSd(a.trePooled, 2),
    );
  }
  if (has('treConfidentMean')) {
    header.push('TRE top-50 % confident (mm)');
    columns.push((a) => meanSd(a.metrics.treConfidentMean, 2));
  }
  if (has('diceMean')) {
    header.push('Dice mean ± sd');
    columns.push((a) => meanSd(a.metrics.diceMean, 3));
  }
  if (has('diceStructuresMean')) {
    header.push('Dice labels+unions');
    columns.push((a) => meanSd(a.metrics.diceStructuresMean, 3));
  }
  if (has('hd95Mean')) {
    header.push('HD95 (mm)');
    columns.push((a) => meanSd(a.metrics.hd95Mean, 2));
  }
  if (has('percentNonPositiveJacobian')) {
    header.push('%NJD', 'SDlogJ', 'std det J');
    columns.push(
      (a) => meanSd(a.metrics.percentNonPositiveJacobian, 3),
      (a) => meanSd(a.metrics.sdLogJ, 3),
      (a) => meanSd(a.metrics.stdJacobian, 3),
    );
  }
  header.push('time (s)', 'peak RSS (MB)');
  columns.push(
    (a) => meanSd(a.metrics.seconds, 1),
    (a) => fixed(a.metrics.peakRssMb?.max, 0),
  );
  return { header, rows: report.aggregate.map((a) => columns.map((c) => c(a))) };
}

/** Names of the label unions some method has Dice values for. */
const unionNames = (report: BenchmarkReport) => [
  ...new Set(report.aggregate.flatMap((a) => Object.keys(a.dicePerGroup ?? {}))),
];

/** What the "Dice labels+unions" column averages, when some method has it. */
function unionsNote(report: BenchmarkReport): string | undefined {
  if (!report.aggregate.some((a) => a.metrics.diceStructuresMean)) return undefined;
  const names = report.dataset.labelNames ?? {};
  const groups = unionNames(report);
  const described = groups.map((g) => {
    const members = report.dataset.labelGroups?.[g]?.map((l) => names[l] ?? String(l));
    return members ? `${g} (${members.join(' ∪ ')})` : g;
  });
  return `Dice labels+unions: mean of the Dice of each label and of the label unions ${described.join(', ')}.`;
}

/** Mean Dice per label and per label union and method, when there are at most `limit` labels. */
function labelTable(
  report: BenchmarkReport,
  limit: number,
): { header: string[]; rows: string[][] } | undefined {
  const labels = [...new Set(report.aggregate.flatMap((a) => Object.keys(a.dicePerLabel ?? {})))].sort(
    (a, b) => Number(a) - Number(b),
  );
  if (labels.length === 0 || labels.length > limit) return undefined;
  const groups = unionNames(report);
  const names = report.dataset.labelNames ?? {};
  return {
    header: ['method', ...labels.map((l) => `Dice ${names[l] ?? l}`), ...groups.map((g) => `Dice ${g}`)],
    rows: report.aggregate.map((a) => [
      a.method,
      ...labels.map((l) => fixed(a.dicePerLabel?.[l], 3)),
      ...groups.map((g) => fixed(a.dicePerGroup?.[g], 3)),
    ]),
  };
}

function markdownTable({ header, rows }: { header: string[]; rows: string[][] }): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

function runLines(run: RunInfo): string[] {
  const m = run.machine;
  return [
    `date: ${run.date}`,
    `command: \`${run.commandLine.join(' ')}\``,
    `seed: ${run.seed}${run.quick ? ' (quick mode)' : ''}`,
    `versions: ${Object.entries(run.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `machine: ${m.cpu}, ${m.cores} cores, ${m.ramGb.toFixed(0)} GB RAM, ${m.os}; load average at start ${m.loadAverageStart.map((l) => l.toFixed(2)).join(' ')}${m.loadAverageEnd ? `, at end ${m.loadAverageEnd.map((l) => l.toFixed(2)).join(' ')}` : ''}`,
    ...(run.wallSeconds === undefined ? [] : [`wall time: ${(run.wallSeconds / 60).toFixed(1)} min`]),
  ];
}

export function summaryMarkdown(report: BenchmarkReport): string {
  const labels = labelTable(report, 12);
  const unions = unionsNote(report);
  return [
    `# Benchmark: ${report.dataset.name}`,
    '',
    report.dataset.description,
    '',
    ...runLines(report.run).map((l) => `- ${l}`),
    '',
    '## Methods',
    '',
    ...report.methods.map((m) => `- **${m.name}**: ${m.description}`),
    '',
    '## Summary (mean ± sd over cases)',
    '',
    markdownTable(summaryTable(report)),
    '',
    ...(unions ? [unions, ''] : []),
    ...(labels ? ['## Dice per label (mean over cases)', '', markdownTable(labels), ''] : []),
    `Data: ${report.dataset.citation}.`,
    '',
  ].join('\n');
}

function htmlTable({ header, rows }: { header: string[]; rows: string[][] }): string {
  const cells = (r: string[], tag: string) => r.map((c) => `<${tag}>${escapeXml(c)}</${tag}>`).join('');
  return `<table><thead><tr>${cells(header, 'th')}</tr></thead><tbody>${rows.map((r) => `<tr>${cells(r, 'td')}</tr>`).join('')}</tbody></table>`;
}

/** A shell command line running this checkout's diffreg (bin/diffreg.js by absolute path, so it runs anywhere). */
export function diffregCommandLine(args: readonly string[]): string {
  const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'diffreg.js');
  const quote = (s: string) => (/^[\w./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return [bin, ...args].map(quote).join(' ');
}

export function reportHtml(report: BenchmarkReport, outDir: string, maxOverlays = 12): string {
  const methods = report.methods.map((m) => m.name);
  const plots = METRICS.filter(({ key }) =>
    report.cases.some((c) => !c.error && metricValue(c, key) !== undefined),
  ).map(({ key, label, unit }) =>
    boxPlotSvg(
      label,
      unit,
      methods.map((name) => ({
        name,
        values: report.cases
          .filter((c) => c.method === name && !c.error)
          .map((c) => metricValue(c, key) as number)
          .filter((v) => v !== undefined),
      })),
    ),
  );
  const runtime = barChartSvg(
    'Runtime per case',
    's',
    report.aggregate.map((a) => ({
      name: a.method,
      mean: a.metrics.seconds?.mean ?? NaN,
      sd: a.metrics.seconds?.sd ?? NaN,
    })),
  );
  const labels = labelTable(report, 60);
  const unions = unionsNote(report);
  const overlays = report.overlays.slice(0, maxOverlays).map(({ caseId, method, file }) => {
    const data = readFileSync(join(outDir, file)).toString('base64');
    return `<figure><img alt="${escapeXml(`${caseId} ${method}`)}" src="data:image/png;base64,${data}"><figcaption>${escapeXml(caseId)} — ${escapeXml(method)}: fixed | moving | warped moving</figcaption></figure>`;
  });
  const figures = report.cases.flatMap((c) =>
    (c.figures ?? []).map(({ caption, file }) => {
      const data = readFileSync(join(outDir, file)).toString('base64');
      return `<figure><img alt="${escapeXml(`${c.caseId} ${c.method}`)}" src="data:image/png;base64,${data}"><figcaption>${escapeXml(c.caseId)} — ${escapeXml(c.method)}: ${escapeXml(caption)}</figcaption></figure>`;
    }),
  );
  const failures = report.cases.filter((c) => c.error);
  const caseIds = [...new Set(report.cases.map((c) => c.caseId))];
  const views = caseIds.map(
    (id) =>
      `<li><code>${escapeXml(diffregCommandLine(['view', '--bench', resolve(outDir), '--case', id]))}</code></li>`,
  );
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>diffreg bench: ${escapeXml(report.dataset.name)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1500px}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:12px}figure{display:inline-block;margin:8px}img{image-rendering:pixelated;max-width:100%}</style></head>
<body><h1>Benchmark: ${escapeXml(report.dataset.name)}</h1><p>${escapeXml(report.dataset.description)}</p>
<ul>${runLines(report.run)
    .map((l) => `<li>${escapeXml(l)}</li>`)
    .join('')}</ul>
<h2>Methods</h2><ul>${report.methods.map((m) => `<li><b>${escapeXml(m.name)}</b>: ${escapeXml(m.description)}</li>`).join('')}</ul>
<h2>Summary (mean ± sd over cases)</h2>${htmlTable(summaryTable(report))}
${unions ? `<p>${escapeXml(unions)}</p>` : ''}
${failures.length ? `<h2>Failures</h2><ul>${failures.map((c) => `<li>${escapeXml(`${c.caseId} ${c.method}: ${c.error}`)}</li>`).join('')}</ul>` : ''}
<h2>Distributions over cases</h2><div class="plots">${plots.join('')}${runtime}</div>
${labels ? `<h2>Dice per label (mean over cases)</h2>${htmlTable(labels)}` : ''}
<h2>Slice overlays</h2><p>Green: fixed labels and keypoints; magenta: moving / warped labels; yellow: true moving positions; red: fixed keypoint + residual error.</p>
${overlays.join('\n')}
${figures.length ? `<h2>The methods' own pictures</h2>${figures.join('\n')}` : ''}
<h2>Viewing a case</h2><p>Each command opens the case in the browser (<code>diffreg view</code>: images, labels, landmarks, click to correspond); add <code>--method NAME</code> (${escapeXml(methods.join(', '))}) to see that method's field, registered again.</p>
<ul>${views.join('')}</ul>
<p>Data: ${escapeXml(report.dataset.citation)}.</p></body></html>
`;
}

/** Writes every results file of the report into `outDir`. */
export function writeReport(outDir: string, report: BenchmarkReport): void {
  writeFileAtomic(join(outDir, 'results.json'), toJson(report));
  writeFileAtomic(join(outDir, 'cases.csv'), casesCsv(report.cases));
  writeFileAtomic(
    join(outDir, 'labels.csv'),
    labelsCsv(report.cases, report.dataset.labelNames, report.dataset.labelGroups),
  );
  writeFileAtomic(join(outDir, 'summary.md'), summaryMarkdown(report));
  writeFileAtomic(join(outDir, 'report.html'), reportHtml(report, outDir));
}
