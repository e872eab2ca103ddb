/** A dense float32 tensor in row-major order. The engine computes in f32; loaders dequantize into this. */
export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensor(shape: readonly number[], data?: Float32Array): Tensor {
  const n = numel(shape);
  if (data && data.length !== n) {
    throw new RangeError(`tensor: shape [${shape.join(", ")}] needs ${n} values, got ${data.length}`);
  }
  return { shape: [...shape], data: data ?? new Float32Array(n) };
}

export function shapeEquals(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Index of the first NaN or +-Inf, or -1. (x - x is NaN exactly for those: ~3x faster than Number.isFinite.) */
export function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}
