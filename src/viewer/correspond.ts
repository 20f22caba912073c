/**
 * Click to correspond, from the server's side: a child process (correspond-process.ts) holds the model
 * and the pair's descriptors; this object sends it clicks, keeps the progress of the descriptors for the
 * page to poll, and turns the answers into promises.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { getNumThreads } from '../engine/index.ts';
import type { DisplacementField } from '../geometry/field.ts';
import { Volume, type Vec3, type VolumeInit, type VoxelArray } from '../geometry/volume.ts';
import type { PointMatch } from '../methods/meddift/index.ts';
import { DiffregError } from '../util/errors.ts';

/** A volume as it crosses between the processes (advanced serialization keeps typed arrays). */
export type VolumeMessage = Pick<VolumeInit, 'dims' | 'spacing' | 'origin' | 'direction'> & {
  data: VoxelArray;
};

export type FromViewer =
  | {
      type: 'open';
      fixed: VolumeMessage;
      moving: VolumeMessage;
      field?: VolumeMessage;
      /** The model options as the CLI gives them (see cli/model.ts). */
      model: Record<string, unknown>;
      threads?: number;
      radiusMm: number;
    }
  | { type: 'match'; id: number; point: Vec3 };

export type ToViewer =
  | { type: 'ready' }
  | { type: 'progress'; stage: string; done: number; total: number }
  | {
      type: 'match';
      id: number;
      match: PointMatch;
      search: 'local' | 'global';
      seconds: number;
      map: VolumeMessage;
      mapWindow: [number, number];
    }
  | { type: 'error'; id?: number; message: string };

export interface CorrespondStatus {
  /** idle: no click yet; computing: descriptors being made; ready: each click only matches. */
  state: 'idle' | 'computing' | 'ready' | 'failed';
  stage?: string;
  done: number;
  total: number;
  /** Since the descriptors were asked for. */
  seconds: number;
  message?: string;
}

export interface Answer {
  match: PointMatch;
  search: 'local' | 'global';
  /** Matching and similarity map, in the correspondence process (the descriptors excluded). */
  seconds: number;
  /** Cosine similarity of the clicked point's descriptor to every moving voxel (world geometry). */
  map: Volume<Float32Array>;
  /** The map's display range: its top half percent of voxels. */
  mapWindow: [number, number];
}

export interface CorrespondOptions {
  fixed: Volume;
  moving: Volume;
  /** With a field, matches are searched within `radiusMm` of p + u(p); without, over the whole image. */
  field?: DisplacementField;
  radiusMm: number;
  model: Record<string, unknown>;
}

function toMessage(v: Volume): VolumeMessage {
  return { data: v.data, dims: v.dims, spacing: v.spacing, origin: v.origin, direction: v.direction };
}

const PROCESS_SCRIPT = fileURLToPath(new URL('./correspond-process.ts', import.meta.url));

export class Correspondence {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, { resolve: (a: Answer) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private started = 0;
  private current: CorrespondStatus = { state: 'idle', done: 0, total: 2, seconds: 0 };
  private failure?: Error;

  private constructor(child: ChildProcess) {
    this.child = child;
    child.on('message', (m: ToViewer) => this.receive(m));
    child.on('exit', () => this.stop(new Error('the correspondence process stopped')));
  }

  /** Starts the process and loads the model there; a model that cannot load fails here, in one line. */
  static async open(options: CorrespondOptions): Promise<Correspondence> {
    // Its own process group: Ctrl-C in the terminal reaches the viewer, which closes it.
    const child = fork(PROCESS_SCRIPT, [], {
      execArgv: ['--import', import.meta.resolve('tsx')],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      detached: true,
    });
    const c = new Correspondence(child);
    const ready = new Promise<void>((resolve, reject) => {
      const first = (m: ToViewer) => {
        child.off('message', first);
        if (m.type === 'ready') resolve();
        else reject(new DiffregError(m.type === 'error' ? m.message : `unexpected ${m.type}`));
      };
      child.on('message', first);
      child.once('exit', (code) => reject(new Error(`the correspondence process exited (${code})`)));
    });
    const open: FromViewer = {
      type: 'open',
      fixed: toMessage(options.fixed),
      moving: toMessage(options.moving),
      field: options.field && toMessage(options.field),
      model: options.model,
      threads: getNumThreads(),
      radiusMm: options.radiusMm,
    };
    child.send(open);
    try {
      await ready;
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  status(): CorrespondStatus {
    const seconds = this.started ? (performance.now() - this.started) / 1000 : 0;
    return { ...this.current, seconds: this.current.state === 'computing' ? seconds : this.current.seconds };
  }

  /** The match of a fixed-image world point (LPS mm, inside the fixed image). */
  match(point: Vec3): Promise<Answer> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.current.state === 'idle' || this.current.state === 'failed') {
      this.started = performance.now();
      this.current = { state: 'computing', stage: 'loading', done: 0, total: 2, seconds: 0 };
    }
    const id = this.nextId++;
    const message: FromViewer = { type: 'match', id, point };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send(message);
    });
  }

  async close(): Promise<void> {
    this.failure ??= new Error('the viewer is closing');
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill();
    await exited;
  }

  private receive(m: ToViewer): void {
    if (m.type === 'progress') {
      const state = m.done >= m.total ? 'ready' : 'computing';
      if (state === 'ready' && this.current.state !== 'ready')
        this.current = {
          state,
          done: m.done,
          total: m.total,
          seconds: (performance.now() - this.started) / 1000,
        };
      else if (state === 'computing') this.current = { ...this.current, state, stage: m.stage, done: m.done };
      return;
    }
    if (m.type === 'ready' || m.id === undefined) return;
    const waiting = this.pending.get(m.id);
    this.pending.delete(m.id);
    if (m.type === 'error') {
      if (this.current.state === 'computing')
        this.current = { ...this.current, state: 'failed', message: m.message };
      waiting?.reject(new DiffregError(m.message));
    } else {
      waiting?.resolve({
        match: m.match,
        search: m.search,
        seconds: m.seconds,
        mapWindow: m.mapWindow,
        map: new Volume({ ...(m.map as VolumeInit<Float32Array>) }),
      });
    }
  }

  private stop(e: Error): void {
    this.failure ??= e;
    for (const { reject } of this.pending.values()) reject(this.failure);
    this.pending.clear();
  }
}
