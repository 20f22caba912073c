/**
 * One entry point for images: `readVolume` dispatches on the extension (or a directory → DICOM series),
 * `writeVolume` writes NIfTI or MetaImage. Every reader returns an LPS Volume (see geometry/volume.ts).
 *
 * | format      | read                                   | write            | through         |
 * |-------------|----------------------------------------|------------------|-----------------|
 * | `nifti`     | .nii .nii.gz .hdr(+.img)               | .nii .nii.gz     | own code        |
 * | `metaimage` | .mha .mhd                              | .mha .mhd        | ITK / own code  |
 * | `nrrd`      | .nrrd .nhdr                            | –                | ITK             |
 * | `dicom`     | directory (series), .dcm               | –                | ITK (GDCM)      |
 * | `dirlab`    | .img without .hdr, with `dirLabCase`   | –                | own code        |
 * | `png`       | .png (one 2-D slice)                   | .png (8-bit)     | own code        |
 */
import { existsSync, statSync } from 'node:fs';
import { Volume, type GridInit } from '../geometry/volume.ts';
import { fail } from '../util/errors.ts';
import { invalid, oneOf } from '../util/is.ts';
import { readDirLabImage } from './dirlab.ts';
import { readItkImage } from './itk.ts';
import { writeMetaImage } from './metaimage.ts';
import { readNifti, writeNifti } from './nifti.ts';
import { readPng, writePng } from './png.ts';

export const VOLUME_FORMATS = ['nifti', 'metaimage', 'nrrd', 'dicom', 'dirlab', 'png'] as const;
export type VolumeFormat = (typeof VOLUME_FORMATS)[number];

export interface ReadVolumeOptions {
  /** Overrides detection from the extension. */
  format?: VolumeFormat;
  /** Accept NaN/Inf voxel values (rejected by default, naming the count). */
  allowNonFinite?: boolean;
  /** Time point of a 4D image; 4D images are rejected without it. */
  frame?: number;
  /** DIR-Lab case of a raw `.img` file (`case1`..`case10`, `copd1`..`copd10`). */
  dirLabCase?: string;
  /** Fail unless the image has this grid (dims, spacing, origin, direction), e.g. a mask for an image. */
  matchGrid?: GridInit;
}

export interface WriteVolumeOptions {
  format?: 'nifti' | 'metaimage' | 'png';
  /** NIfTI header version (default 1). */
  version?: 1 | 2;
  /** gzip level for `.nii.gz` (default 6). */
  compressionLevel?: number;
  /** zlib compression of MetaImage data (default true). */
  compress?: boolean;
}

/** The format of a path from its extension (a directory is a DICOM series). */
export function detectVolumeFormat(path: string, dirLabCase?: string): VolumeFormat {
  const lower = path.toLowerCase();
  if (existsSync(path) && statSync(path).isDirectory()) return 'dicom';
  if (/\.(nii|nii\.gz|hdr)$/.test(lower)) return 'nifti';
  if (/\.img(\.gz)?$/.test(lower)) {
    if (existsSync(path.replace(/\.img(\.gz)?$/i, '.hdr'))) return 'nifti';
    if (dirLabCase !== undefined) return 'dirlab';
    fail(path, 'raw .img without a .hdr header (a DIR-Lab .img is read with its case, e.g. case1)');
  }
  if (/\.(mha|mhd)$/.test(lower)) return 'metaimage';
  if (/\.(nrrd|nhdr)$/.test(lower)) return 'nrrd';
  if (/\.(dcm|dicom|ima)$/.test(lower)) return 'dicom';
  if (lower.endsWith('.png')) return 'png';
  fail(
    path,
    'unknown image extension (expected .nii, .nii.gz, .hdr/.img, .mha, .mhd, .nrrd, .nhdr, .dcm, .png or a DICOM series folder)',
  );
}

/** Reads an image file (or DICOM series directory) as an LPS Volume. */
export async function readVolume(path: string, options: ReadVolumeOptions = {}): Promise<Volume> {
  if (typeof path !== 'string' || !path) throw invalid('path', 'a file path', path);
  if (!existsSync(path)) fail(path, 'file not found');
  const format =
    options.format === undefined
      ? detectVolumeFormat(path, options.dirLabCase)
      : oneOf('format', options.format, VOLUME_FORMATS);
  let volume: Volume;
  if (format === 'nifti') volume = readNifti(path, options);
  else if (format === 'png') volume = readPng(path);
  else if (format === 'dirlab') {
    if (options.dirLabCase === undefined) fail(path, 'format dirlab needs dirLabCase (e.g. case1, copd1)');
    volume = readDirLabImage(path, options.dirLabCase);
  } else volume = await readItkImage(path, format, options);
  if (options.matchGrid) {
    const difference = volume.gridDifference(options.matchGrid);
    if (difference) fail(path, `grid mismatch with the reference image: ${difference}`);
  }
  return volume;
}

/** Writes a Volume as NIfTI (`.nii`, `.nii.gz`), MetaImage (`.mha`, `.mhd`) or 8-bit PNG (one slice), atomically. */
export async function writeVolume(
  path: string,
  volume: Volume,
  options: WriteVolumeOptions = {},
): Promise<void> {
  if (!(volume instanceof Volume)) throw invalid('volume', 'a Volume', volume);
  const lower = path.toLowerCase();
  const format =
    options.format !== undefined
      ? oneOf('format', options.format, ['nifti', 'metaimage', 'png'] as const)
      : /\.nii(\.gz)?$/.test(lower)
        ? 'nifti'
        : /\.(mha|mhd)$/.test(lower)
          ? 'metaimage'
          : lower.endsWith('.png')
            ? 'png'
            : fail(path, 'cannot write this extension; use .nii, .nii.gz, .mha, .mhd or .png');
  if (format === 'nifti') writeNifti(path, volume, options);
  else if (format === 'png') writePng(path, volume);
  else writeMetaImage(path, volume, options);
}
