/**
 * The training recipes `diffreg train NAME` runs. Adding one = its module (stages over runLoop) plus
 * one line here.
 */
import { DEFAULT_MODEL_RECIPE } from '../models/default/run.ts';
import { DIFFUSEREG_RECIPE } from './diffusereg/recipe.ts';
import { LDM_MORPH_RECIPES } from './ldmmorph/recipe.ts';
import type { TrainingRecipe } from '../models/training/recipe.ts';
import { fail } from '../util/errors.ts';

export const TRAINING_RECIPES: readonly TrainingRecipe[] = [
  DEFAULT_MODEL_RECIPE,
  DIFFUSEREG_RECIPE,
  ...LDM_MORPH_RECIPES,
];

/** The recipe called `name`, or a one-line error listing them. */
export function trainingRecipe(name: string): TrainingRecipe {
  const recipe = TRAINING_RECIPES.find((r) => r.name === name);
  if (!recipe)
    fail(`recipe "${name}"`, `unknown (recipes: ${TRAINING_RECIPES.map((r) => r.name).join(', ')})`);
  return recipe;
}
