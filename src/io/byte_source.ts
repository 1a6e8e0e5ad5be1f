// A file read in parts: a few bytes by range (a safetensors header), then its body as a stream
// of chunks in order. Weight files are GBs (an SDXL U-Net is 5.1 GB in fp16), past what one JS
// buffer should ever hold, so the loader never asks for a whole weight file: it reads the header,
// checks it, and hands each tensor to its GPU buffer as the stream passes it.
export interface ByteSource {
  /** The file's path or URL, for messages. */
  readonly where: string;
  /** The file's size when it is known without reading the body (stat, Content-Range), else null. */
  size(): Promise<number | null>;
  /** Bytes [start, end); fewer only where the file ends before `end`. */
  read(start: number, end: number): Promise<Uint8Array>;
  /** The bytes from `start` to the end of the file, in chunks of any size, in order. */
  stream(start?: number): AsyncIterable<Uint8Array>;
}

/** A ByteSource over bytes already in memory (tests, a reader that only has whole files). */
export function memorySource(bytes: Uint8Array, where: string, chunkBytes = 1 << 24): ByteSource {
  return {
    where,
    size: async () => bytes.byteLength,
    read: async (start, end) => bytes.subarray(Math.min(start, bytes.byteLength), Math.min(end, bytes.byteLength)),
    async *stream(start = 0) {
      for (let p = start; p < bytes.byteLength; p += chunkBytes) yield bytes.subarray(p, Math.min(p + chunkBytes, bytes.byteLength));
    },
  };
}

/**
 * Node: fills `out` from byte `pos` of an open file, in reads of at most 1 GiB (one fs read stops
 * near 2 GiB). `size` (the file's) only goes into the message of a file that shrank meanwhile.
 */
export async function readFully(fh: import('node:fs/promises').FileHandle, out: Uint8Array, pos: number, path: string, size: number): Promise<Uint8Array> {
  for (let got = 0; got < out.byteLength; ) {
    const { bytesRead } = await fh.read(out, got, Math.min(1 << 30, out.byteLength - got), pos + got);
    if (bytesRead === 0) throw new Error(`${path}: file shrank while reading (got ${pos + got} of ${size} bytes)`);
    got += bytesRead;
  }
  return out;
}

/** Node: a file on disk read in slices (fs.readFile stops at 2 GiB, and a whole-file buffer is what we avoid). */
export async function fileSource(path: string, chunkBytes = 1 << 24): Promise<ByteSource | null> {
  const fs = await import('node:fs/promises');
  const stat = await fs.stat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return null;
    throw e;
  });
  if (!stat || !stat.isFile()) return null;
  const size = stat.size;
  const readAt = (fh: import('node:fs/promises').FileHandle, pos: number, len: number) => readFully(fh, new Uint8Array(len), pos, path, size);
  return {
    where: path,
    size: async () => size,
    async read(start, end) {
      const fh = await fs.open(path, 'r');
      try {
        const s = Math.min(start, size);
        return await readAt(fh, s, Math.max(0, Math.min(end, size) - s));
      } finally {
        await fh.close();
      }
    },
    async *stream(start = 0) {
      const fh = await fs.open(path, 'r');
      try {
        for (let p = start; p < size; p += chunkBytes) yield await readAt(fh, p, Math.min(chunkBytes, size - p));
      } finally {
        await fh.close();
      }
    },
  };
}
