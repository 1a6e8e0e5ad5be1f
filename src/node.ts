// Node-only extras ('fresco/node'): PNG files and loaders that take a folder path. Kept out of the
// main entry because pngjs needs Node's zlib and Buffer.
export { encodePng, decodePng, writeFileNoClobber } from './io/png.ts';
export { loadLdmFolder } from './pipelines/ldm_folder.ts';
export { loadSdFolder } from './pipelines/sd_folder.ts';
export { nodeFolderReader } from './io/model_folder.ts';
