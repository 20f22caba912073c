/**
 * The learned methods' shipped weights (DiffuseReg and its bootstrap network, LDM-Morph) were trained
 * on ACDC cine cardiac MR: they still run on other images, with a warning.
 */
import type { RegistrationCase } from '../data/case.ts';

/** Warns on stderr when the pair is not MR, naming the method whose weights it is outside of. */
export function warnIfNotCardiacMr(item: RegistrationCase, method: string): void {
  if (item.modality !== 'mr')
    process.stderr.write(
      `diffreg: warning: ${method}'s weights were trained on cardiac cine MR; this ${item.modality.toUpperCase()} pair is outside what it learned\n`,
    );
}
