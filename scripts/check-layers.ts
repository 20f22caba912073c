/**
 * The layering check (`npm run deps`, part of `make test`): every import in src/ must point to the
 * same layer or one below it, in the order of the README's Layout section. Exits 1 listing each
 * upward import as "file → imported file (layer → layer)".
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bottom up; folders on one line share a layer and may import each other. */
const LAYERS: string[][] = [
  ['util'],
  ['engine'],
  ['io', 'geometry'],
  ['data'],
  ['models'],
  ['methods'],
  ['eval'],
  ['cli', 'viewer'],
  ['index.ts'],
];

const src = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

function layerOf(file: string): number {
  const top = relative(src, file).split('/')[0];
  const layer = LAYERS.findIndex((names) => names.includes(top));
  if (layer < 0)
    throw new Error(
      `${relative(src, file)}: src/${top} is in no layer; add it to scripts/check-layers.ts and the README`,
    );
  return layer;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
const upward: string[] = [];
let imports = 0;
for (const file of sources(src)) {
  const from = layerOf(file);
  for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
    const target = resolve(dirname(file), m[1] ?? m[2]);
    imports++;
    const to = layerOf(target);
    if (to > from) {
      const name = (l: number) => LAYERS[l].join('/');
      upward.push(`${relative(src, file)} → ${relative(src, target)} (${name(from)} imports ${name(to)})`);
    }
  }
}
if (upward.length) {
  process.stderr.write(
    `[deps] ${upward.length} upward import${upward.length === 1 ? '' : 's'}:\n  ${upward.join('\n  ')}\n`,
  );
  process.exit(1);
}
process.stdout.write(
  `[deps] ${imports} imports in src/ respect the layers ${LAYERS.map((l) => l.join('/')).join(' → ')}\n`,
);
