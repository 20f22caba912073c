/** Image and landmark I/O. Everything in memory is LPS world millimetres (see geometry/volume.ts). */
export {
  readVolume,
  writeVolume,
  detectVolumeFormat,
  VOLUME_FORMATS,
  type VolumeFormat,
  type ReadVolumeOptions,
  type WriteVolumeOptions,
} from './volume-io.ts';
export {
  Landmarks,
  readLandmarks,
  writeLandmarks,
  LANDMARK_FORMATS,
  type LandmarkFormat,
  type ReadLandmarksOptions,
  type WriteLandmarksOptions,
} from './landmarks.ts';
export {
  readNifti,
  writeNifti,
  encodeNifti,
  type NiftiReadOptions,
  type NiftiWriteOptions,
} from './nifti.ts';
export { writeMetaImage, type MetaImageWriteOptions } from './metaimage.ts';
export { readPng, writePng, pngUnwritable } from './png.ts';
export { readItkImage, type ItkFormat, type ItkReadOptions } from './itk.ts';
export {
  readDirLabImage,
  dirLabGrid,
  DIRLAB_CASES,
  type DirLabCase,
  type DirLabReadOptions,
} from './dirlab.ts';
