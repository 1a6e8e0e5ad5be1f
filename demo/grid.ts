// How the demo lays out several images: a near-square grid (2x2 for 4, 3x3 for 9) rather than
// one long row, so each image can be shown large enough. generate() lays them out (columns).

/** Images per row for n images. */
export function gridColumns(n: number): number {
  return Math.ceil(Math.sqrt(n));
}
