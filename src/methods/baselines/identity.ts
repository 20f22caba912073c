/** The identity transform: the unregistered starting point every table is read against. */
import { zeroField } from '../../geometry/index.ts';
import { measured } from '../../util/measure.ts';
import type { MethodEntry, RegistrationMethod } from '../method.ts';

export const identityMethod: RegistrationMethod = {
  name: 'identity',
  description: 'no registration: u = 0 on the fixed grid (initial alignment in world coordinates)',
  async register(item) {
    const { value, seconds, peakRssMb } = await measured(async () => zeroField(item.fixed));
    return { field: value, seconds, peakRssMb };
  },
};

export const identityEntry: MethodEntry = {
  name: 'identity',
  summary: 'no registration (u = 0): the starting point every table is read against',
  dense: true,
  options: [],
  usesModel: false,
  create: () => identityMethod,
};
