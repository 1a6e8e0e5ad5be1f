export interface Tensor {
  buffer: GPUBuffer;
  shape: readonly number[];
  label: string;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function bytesOf(t: Tensor): number {
  return numel(t.shape) * 4;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
