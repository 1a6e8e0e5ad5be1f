// GPT-2's byte -> unicode map, which CLIP's BPE vocabulary is written in: every byte gets a
// printable, non-space symbol, so a byte string becomes a string BPE can merge without
// tripping over whitespace or control characters.

function printableBytes(): number[] {
  const out: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) out.push(b);
  for (let b = 0xa1; b <= 0xac; b++) out.push(b);
  for (let b = 0xae; b <= 0xff; b++) out.push(b);
  return out;
}

/** BYTE_SYMBOLS[b] is the vocabulary symbol of byte b. */
export const BYTE_SYMBOLS: readonly string[] = (() => {
  const symbols = new Array<string>(256);
  const printable = printableBytes();
  for (const b of printable) symbols[b] = String.fromCodePoint(b);
  // The other bytes take code points from U+0100 up, in byte order (space becomes U+0120).
  let next = 0x100;
  for (let b = 0; b < 256; b++) if (symbols[b] === undefined) symbols[b] = String.fromCodePoint(next++);
  return symbols;
})();

const utf8 = new TextEncoder();

/** The byte symbols of a piece's UTF-8 encoding, one per byte. */
export function byteSymbols(piece: string): string[] {
  const bytes = utf8.encode(piece);
  const out = new Array<string>(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = BYTE_SYMBOLS[bytes[i]!]!;
  return out;
}
