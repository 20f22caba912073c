/**
 * A training recipe: what `diffreg train NAME` runs — named stages over the shared data, each
 * resumable from the run folder, with a few integer settings of its own (steps and the like).
 */
import type { ProgressFn } from '../../util/progress.ts';

export interface RecipeSetting {
  /** CLI flag without the dashes, e.g. "unet-steps". */
  name: string;
  /** One line for --help, with the default. */
  help: string;
  /** Smallest value the CLI accepts (default 1: step counts); the recipe checks the rest. */
  min?: number;
}

export interface RecipeRunOptions {
  /** One of the recipe's stages ('all' runs them in order). */
  stage: string;
  /** Root of the training data (the layout of ../shared/data). */
  dataDir: string;
  /** Checkpoints, logs and loss curves, one folder per stage; a rerun resumes from them. */
  runDir: string;
  /** Where the export stage writes the model files and evaluation reads them. */
  modelDir: string;
  /** Stop each training stage after this step (resume later with the same options). */
  stopAfter?: number;
  /** The recipe's own settings by name (undefined: its default). */
  settings: Record<string, number | undefined>;
  progress?: ProgressFn;
}

export interface RecipeResult {
  /** False when a stage stopped early (stopAfter); later stages were not run. */
  finished: boolean;
  /** A few lines for a person: steps reached, final losses, where files went. */
  lines: string[];
  /** The same for programs (`--json`). */
  summary: Record<string, unknown>;
}

export interface TrainingRecipe {
  name: string;
  /** One line for `diffreg train --help`. */
  summary: string;
  /** The stages, 'all' first. */
  stages: readonly string[];
  settings: readonly RecipeSetting[];
  run(options: RecipeRunOptions): Promise<RecipeResult>;
}
