/**
 * The viewer's HTTP server (Node's http). It answers from memory only: the page, NiiVue's bundle and
 * the scene's volumes are held under fixed route names, looked up by the exact request path, so no
 * part of a request ever reaches the file system. Bad requests get a 4xx with a one-line JSON error
 * and the server goes on.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { Volume, Vec3 } from '../geometry/volume.ts';
import { encodeNifti } from '../io/index.ts';
import { DiffregError, fail } from '../util/errors.ts';
import type { Correspondence } from './correspond.ts';
import type { Scene } from './scene.ts';

/** A click is `{"point": [x, y, z]}`: a few dozen bytes. Anything far larger is not a click. */
export const MAX_BODY_BYTES = 4096;
const MAX_URL_LENGTH = 2048;
/** Similarity maps kept for the page to fetch (the latest clicks'). */
const KEPT_MAPS = 8;

interface Asset {
  type: string;
  body: Buffer;
}

const PAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'page');

/** NiiVue's self-contained ES module bundle (dist/index.js: no imports), from node_modules. */
function niivueBundle(): Buffer {
  let entry: string;
  try {
    entry = fileURLToPath(import.meta.resolve('@niivue/niivue'));
  } catch {
    fail('@niivue/niivue', 'not installed; run npm ci (or make setup)');
  }
  // entry is <package>/build/niivue/index.js
  return readFileSync(join(dirname(entry), '..', '..', 'dist', 'index.js'));
}

function staticAssets(): Map<string, Asset> {
  const page = (file: string, type: string): Asset => ({ type, body: readFileSync(join(PAGE_DIR, file)) });
  return new Map([
    ['/', page('index.html', 'text/html; charset=utf-8')],
    ['/viewer.js', page('viewer.js', 'text/javascript; charset=utf-8')],
    ['/niivue.js', { type: 'text/javascript; charset=utf-8', body: niivueBundle() }],
  ]);
}

const SECURITY_HEADERS = {
  // Everything comes from this server: the page works offline and loads nothing else.
  'Content-Security-Policy':
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self' data: blob:",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, type: string, body: Buffer | string, head = false): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(head ? undefined : body);
}

const sendJson = (res: ServerResponse, status: number, value: unknown) =>
  send(
    res,
    status,
    'application/json',
    JSON.stringify(value, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)),
  );

/** The request body, refused once it passes MAX_BODY_BYTES (by its header, or as it streams in). */
function readBody(req: IncomingMessage): Promise<string> {
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES)
    return Promise.reject(new HttpError(413, `body: larger than ${MAX_BODY_BYTES} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, `body: larger than ${MAX_BODY_BYTES} bytes`));
        req.removeAllListeners('data');
        req.resume();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** `{"point": [x, y, z]}` → the point, or a 400 saying what is wrong. */
function clickedPoint(body: string, fixed: Volume): Vec3 {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new HttpError(400, 'body: malformed JSON');
  }
  const point = (value as { point?: unknown } | null)?.point;
  if (
    !Array.isArray(point) ||
    point.length !== 3 ||
    !point.every((v) => typeof v === 'number' && Number.isFinite(v))
  )
    throw new HttpError(400, 'point: expected three finite numbers (LPS world mm)');
  if (!fixed.containsIndex(fixed.worldToVoxel(point as Vec3)))
    throw new HttpError(400, 'point: outside the fixed image');
  return point as Vec3;
}

/** The names of this machine a page may use for a server on loopback. */
const LOOPBACK = ['127.0.0.1', 'localhost', '[::1]'];

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export interface ViewerOptions {
  host: string;
  /** 0: any free port. */
  port: number;
}

export interface ViewerServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startViewer(
  scene: Scene,
  fixed: Volume,
  correspondence: Correspondence,
  options: ViewerOptions,
): Promise<ViewerServer> {
  const assets = staticAssets();
  assets.set('/api/scene', {
    type: 'application/json',
    body: Buffer.from(JSON.stringify(scene.description)),
  });
  const maps = new Map<string, Buffer>();
  let clicks = 0;
  // On loopback, a request must name this machine: a page of another site that points its own name
  // at 127.0.0.1 (DNS rebinding) sends its own name and is refused.
  const hosts = isLoopback(options.host) ? new Set([...LOOPBACK, options.host]) : undefined;

  async function matchClick(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!/^application\/json\b/.test(req.headers['content-type'] ?? ''))
      throw new HttpError(415, 'body: expected Content-Type application/json');
    const point = clickedPoint(await readBody(req), fixed);
    let answer;
    try {
      answer = await correspondence.match(point);
    } catch (e) {
      throw new HttpError(503, (e as Error).message);
    }
    const route = `/volumes/similarity-${clicks++}.nii.gz`;
    maps.set(route, gzipSync(encodeNifti(answer.map, {}, 'similarity map'), { level: 1 }));
    for (const old of maps.keys()) if (maps.size > KEPT_MAPS) maps.delete(old);
    sendJson(res, 200, {
      ...answer.match,
      search: answer.search,
      radiusMm: scene.description.search.radiusMm,
      seconds: answer.seconds,
      map: route,
      mapWindow: answer.mapWindow,
    });
  }

  /** The resource at exactly this path, if there is one. */
  function resource(path: string): Asset | undefined {
    if (path === '/api/status')
      return { type: 'application/json', body: Buffer.from(JSON.stringify(correspondence.status())) };
    const volume = scene.files.get(path) ?? maps.get(path);
    return assets.get(path) ?? (volume && { type: 'application/gzip', body: volume });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '';
    if (url.length > MAX_URL_LENGTH) throw new HttpError(414, 'URL too long');
    if (hosts && !hosts.has((req.headers.host ?? '').replace(/:\d+$/, '')))
      throw new HttpError(403, `host: the viewer answers only to ${[...hosts].join(', ')}`);
    // The path as sent, undecoded and unnormalised: it must equal a route name exactly.
    const path = url.split('?')[0];
    if (path === '/api/match') {
      if (req.method !== 'POST') throw new HttpError(405, `${req.method}: /api/match takes POST`);
      return matchClick(req, res);
    }
    const found = resource(path);
    if (!found) throw new HttpError(404, `${path.slice(0, 200)}: not found`);
    if (req.method !== 'GET' && req.method !== 'HEAD')
      throw new HttpError(405, `${req.method}: ${path} takes GET`);
    send(res, 200, found.type, found.body, req.method === 'HEAD');
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      const status = e instanceof HttpError ? e.status : 500;
      if (status === 405) res.setHeader('Allow', req.url?.startsWith('/api/match') ? 'POST' : 'GET, HEAD');
      // A refused body is not read to its end: the connection goes, not the server.
      if (status === 413) res.setHeader('Connection', 'close');
      if (!res.headersSent) sendJson(res, status, { error: e.message });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new DiffregError(
              `--port: ${options.port} is in use; give another (or --port 0 for any free port)`,
            )
          : e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND'
            ? new DiffregError(`--host: cannot listen on ${options.host} (${e.code})`)
            : e,
      ),
    );
    server.listen(options.port, options.host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${shownHost}:${port}/`,
    port,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await correspondence.close();
      await closed;
    },
  };
}
