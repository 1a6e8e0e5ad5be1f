// A class-recognition score for generated Fashion-MNIST images: softmax (multinomial logistic)
// regression on raw pixels, trained here on the 60,000 Fashion-MNIST training images (Debian's
// dataset-fashion-mnist package: /usr/share/datasets/fashion-mnist) padded from 28×28 to 32×32 as
// weights/fashion-ldm was trained. It is a judge, not a model to ship: about 84 % on the 10,000
// test images (pixel regression cannot tell Shirt from T-shirt/Pullover/Coat well), so its score
// on generated images is read against its score on real ones. Deterministic (a seeded shuffle).
//   node --import tsx scripts/fashion_classifier.ts [DATASET_DIR]   (prints the test accuracy)
// bench/quant.ts imports it to score the images each weight format generates.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const SIDE = 32;
const D = SIDE * SIDE;
const CLASSES = 10;

export interface Dataset {
  /** n images of SIDE × SIDE 8-bit gray pixels, row-major. */
  pixels: Uint8Array;
  labels: Uint8Array;
  n: number;
}

function readIdx(path: string): Uint8Array {
  const raw = readFileSync(path);
  return new Uint8Array(path.endsWith('.gz') ? gunzipSync(raw) : raw);
}

/** An IDX image file (magic 2051) padded to SIDE × SIDE with black, and its label file (2049). */
function readSplit(dir: string, prefix: string): Dataset {
  const file = (name: string) => [join(dir, `${name}.gz`), join(dir, name)].find(existsSync) ?? join(dir, `${name}.gz`);
  const img = readIdx(file(`${prefix}-images-idx3-ubyte`));
  const lab = readIdx(file(`${prefix}-labels-idx1-ubyte`));
  const view = new DataView(img.buffer, img.byteOffset);
  if (view.getUint32(0) !== 2051) throw new Error(`${prefix} images: not an IDX image file`);
  const n = view.getUint32(4);
  const h = view.getUint32(8);
  const w = view.getUint32(12);
  if (new DataView(lab.buffer, lab.byteOffset).getUint32(0) !== 2049) throw new Error(`${prefix} labels: not an IDX label file`);
  const pad = (SIDE - h) / 2;
  const pixels = new Uint8Array(n * D);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < h; y++) pixels.set(img.subarray(16 + i * h * w + y * w, 16 + i * h * w + (y + 1) * w), i * D + (y + pad) * SIDE + pad);
  }
  return { pixels, labels: lab.slice(8, 8 + n), n };
}

export function hasFashionMnist(dir = FASHION_MNIST_DIR): boolean {
  return existsSync(join(dir, 'train-labels-idx1-ubyte.gz')) || existsSync(join(dir, 'train-labels-idx1-ubyte'));
}

export function loadFashionMnist(dir = FASHION_MNIST_DIR): { train: Dataset; test: Dataset } {
  return { train: readSplit(dir, 'train'), test: readSplit(dir, 't10k') };
}

export class Classifier {
  /** [CLASSES, D + 1]: each class's weights over the pixels (scaled to [0, 1]) and its bias. */
  constructor(readonly w: Float32Array) {}

  /** The logits of one SIDE × SIDE 8-bit image. */
  logits(px: ArrayLike<number>, out = new Float64Array(CLASSES)): Float64Array {
    for (let c = 0; c < CLASSES; c++) {
      const row = c * (D + 1);
      let s = this.w[row + D]!;
      for (let j = 0; j < D; j++) s += this.w[row + j]! * (px[j]! / 255);
      out[c] = s;
    }
    return out;
  }

  predict(px: ArrayLike<number>): number {
    const l = this.logits(px);
    let best = 0;
    for (let c = 1; c < CLASSES; c++) if (l[c]! > l[best]!) best = c;
    return best;
  }

  /** Overall and per-class accuracy on a data set. */
  accuracy(data: Dataset): { overall: number; perClass: number[] } {
    const hit = new Array<number>(CLASSES).fill(0);
    const all = new Array<number>(CLASSES).fill(0);
    for (let i = 0; i < data.n; i++) {
      const y = data.labels[i]!;
      all[y]!++;
      if (this.predict(data.pixels.subarray(i * D, (i + 1) * D)) === y) hit[y]!++;
    }
    return { overall: hit.reduce((a, b) => a + b, 0) / data.n, perClass: hit.map((h, c) => h / Math.max(1, all[c]!)) };
  }
}

/** Mini-batch SGD on the softmax cross-entropy with a little L2; `epochs` passes over a seeded shuffle. */
export function trainClassifier(train: Dataset, opts: { epochs?: number; batch?: number; lr?: number; l2?: number; seed?: number } = {}): Classifier {
  const { epochs = 6, batch = 64, lr = 0.5, l2 = 1e-4 } = opts;
  const w = new Float32Array(CLASSES * (D + 1));
  const grad = new Float64Array(CLASSES * (D + 1));
  const model = new Classifier(w);
  const order = Uint32Array.from({ length: train.n }, (_, i) => i);
  let s = (opts.seed ?? 1) >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const p = new Float64Array(CLASSES);
  for (let e = 0; e < epochs; e++) {
    for (let i = train.n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const step = lr / (1 + e);
    for (let b0 = 0; b0 < train.n; b0 += batch) {
      grad.fill(0);
      const b1 = Math.min(train.n, b0 + batch);
      for (let k = b0; k < b1; k++) {
        const i = order[k]!;
        const px = train.pixels.subarray(i * D, (i + 1) * D);
        model.logits(px, p);
        let max = -Infinity;
        for (let c = 0; c < CLASSES; c++) max = Math.max(max, p[c]!);
        let z = 0;
        for (let c = 0; c < CLASSES; c++) z += p[c] = Math.exp(p[c]! - max);
        const y = train.labels[i]!;
        for (let c = 0; c < CLASSES; c++) {
          const d = p[c]! / z - (c === y ? 1 : 0);
          const row = c * (D + 1);
          for (let j = 0; j < D; j++) if (px[j]) grad[row + j]! += d * (px[j]! / 255);
          grad[row + D]! += d;
        }
      }
      const scale = step / (b1 - b0);
      for (let q = 0; q < w.length; q++) w[q] = w[q]! - scale * grad[q]! - step * l2 * w[q]!;
    }
  }
  return model;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? FASHION_MNIST_DIR;
  if (!hasFashionMnist(dir)) {
    console.error(`no Fashion-MNIST in ${dir} (Debian: apt-get install dataset-fashion-mnist)`);
    process.exit(2);
  }
  const t0 = performance.now();
  const { train, test } = loadFashionMnist(dir);
  const clf = trainClassifier(train);
  const acc = clf.accuracy(test);
  console.log(`trained in ${((performance.now() - t0) / 1000).toFixed(1)} s; test accuracy ${(100 * acc.overall).toFixed(1)} %`);
  console.log(`per class: ${acc.perClass.map((a, c) => `${c} ${(100 * a).toFixed(0)} %`).join(', ')}`);
}
