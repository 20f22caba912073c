/**
 * The registration-method interface and the registry of every method diffreg has. A method maps a
 * case to a displacement field on the fixed grid (diffreg's convention: LPS world mm, pull-back
 * p → p + u(p), see geometry/field.ts) and/or, for point-matching methods, to a predicted moving
 * position for every fixed point. `diffreg register --method NAME`, `diffreg bench --methods A,B` and
 * their --help find methods here: adding a method = one folder under src/methods/ + one line in
 * METHODS.
 */
import type { RegistrationCase } from '../data/case.ts';
import type { DisplacementField, Vec3, Volume } from '../geometry/index.ts';
import type { LatentDiffusionModel } from '../models/index.ts';
import { fail } from '../util/errors.ts';
import type { ProgressFn } from '../util/progress.ts';
import { elastixEntries, identityEntry } from './baselines/index.ts';
import { diffuseRegEntries } from './diffusereg/method.ts';
import { ldmMorphEntries } from './ldmmorph/method.ts';
import { featureMethodEntries } from './meddift/method.ts';
import type { Descriptor } from './meddift/correspond.ts';

export type { Modality, RegistrationCase } from '../data/case.ts';

export interface RegisterOptions {
  /** Fewer iterations and levels: for tests and smoke runs. */
  quick?: boolean;
  /** Seed of any randomness inside the method. */
  seed?: number;
  progress?: ProgressFn;
}

export interface RegistrationResult {
  /** Transform on the fixed grid: warped(p) = moving(p + u(p)). */
  field?: DisplacementField;
  /** Predicted moving position (LPS mm) of each case.fixedPoints entry, for point-matching methods. */
  movingPointsPredicted?: Vec3[];
  /** The method's confidence in [0, 1] of each predicted point, when it gives one. */
  pointConfidence?: number[];
  /** Wall time of the registration (s). */
  seconds: number;
  /** Peak resident memory of the process during the registration (MB). */
  peakRssMb: number;
  /** Per-voxel uncertainty of the field on the fixed grid (mm), for methods that estimate one. */
  uncertainty?: Volume;
  /** Method-specific facts for the summary (working lattice, time per stage, …). */
  details?: Record<string, unknown>;
  /** Pictures of the method's own work (DiffuseReg's sampling strip), shown in the report. */
  figures?: { name: string; caption: string; png: Buffer }[];
}

export interface RegistrationMethod {
  /** Short name used in tables and file names (letters, digits, '-', '_'). */
  name: string;
  /** One line on what it does and its settings, for the report. */
  description: string;
  register(item: RegistrationCase, options?: RegisterOptions): Promise<RegistrationResult>;
}

/** What a method is made from: where it runs and what the user chose. */
export interface MethodContext {
  /** The benchmark dataset's name, for settings tuned per dataset (elastix's B-spline grid). */
  dataset?: string;
  /** The latent diffusion model, loaded on first call (for methods with `usesModel`). */
  model?: () => LatentDiffusionModel;
  /**
   * The method's own settings, already checked by the caller (the CLI parses the flags listed in
   * `options`); each method documents the shape it reads.
   */
  settings?: object;
}

export interface MethodEntry {
  name: string;
  /** One line for --help. */
  summary: string;
  /** Gives a displacement field (`diffreg register` can run it); otherwise only matched points. */
  dense: boolean;
  /** CLI flags (without dashes) that apply to this method in `diffreg register`. */
  options: readonly string[];
  /** Needs a latent diffusion model (the default model, or MAISI checkpoints by --unet/--autoencoder). */
  usesModel: boolean;
  /**
   * Feature methods: the descriptor they describe both images with ('auto': by the fixed image's
   * modality), which decides whether a pair loads the model at all.
   */
  descriptor?: Descriptor;
  /** Registers 2-D images (one slice, dims [nx, ny, 1]) and stacks slice by slice; others need 3-D volumes. */
  accepts2d?: boolean;
  create(context: MethodContext): RegistrationMethod;
}

export const METHODS: readonly MethodEntry[] = [
  identityEntry,
  ...elastixEntries,
  ...featureMethodEntries,
  ...diffuseRegEntries,
  ...ldmMorphEntries,
];

/** The method called `name`, or a one-line error listing them. */
export function methodEntry(name: string): MethodEntry {
  const entry = METHODS.find((m) => m.name === name);
  if (!entry) fail(`method "${name}"`, `unknown (methods: ${METHODS.map((m) => m.name).join(', ')})`);
  return entry;
}
