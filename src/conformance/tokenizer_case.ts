// Checks the CLIP tokenizer against a folder holding cases.json ({prompt, pieces, n_tokens,
// truncated, input_ids} per case) next to the tokenizer files. Ids must match exactly. Node only.
import { nodeFolderReader, type FolderReader } from '../io/model_folder.ts';
import { CLIPTokenizer } from '../text/clip_tokenizer.ts';
import { TokenizerError } from '../errors.ts';

export interface TokenizerCaseResult {
  cases: number;
  mismatches: number;
  /** The first failing case: its prompt and the first field that differs. */
  firstMismatch?: string;
}

interface TokenizerCase {
  prompt: string;
  pieces: string[];
  n_tokens: number;
  truncated: boolean;
  input_ids: number[];
}

function readCases(bytes: Uint8Array, where: string): TokenizerCase[] {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new TokenizerError(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(v)) throw new TokenizerError(`${where}: expected a list of cases`);
  v.forEach((c, i) => {
    if (typeof c?.prompt !== 'string' || !Array.isArray(c.pieces) || !Array.isArray(c.input_ids) || typeof c.truncated !== 'boolean' || typeof c.n_tokens !== 'number') {
      throw new TokenizerError(`${where}: case ${i} needs prompt, pieces, n_tokens, truncated and input_ids`);
    }
  });
  return v as TokenizerCase[];
}

const same = (a: unknown[], b: unknown[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** What differs between our output and one case, or null when it all matches. */
export function tokenizerMismatch(tok: CLIPTokenizer, c: TokenizerCase): string | null {
  const pieces = tok.pieces(c.prompt);
  const { ids, truncated } = tok.encode(c.prompt);
  const at = `prompt ${JSON.stringify(c.prompt.length > 60 ? c.prompt.slice(0, 60) + '…' : c.prompt)}`;
  if (!same(pieces, c.pieces)) {
    const i = pieces.findIndex((p, k) => p !== c.pieces[k]);
    const k = i < 0 ? Math.min(pieces.length, c.pieces.length) : i;
    return `${at}: piece ${k} is ${JSON.stringify(pieces[k])}, expected ${JSON.stringify(c.pieces[k])} (${pieces.length} vs ${c.pieces.length} pieces)`;
  }
  if (pieces.length !== c.n_tokens) return `${at}: ${pieces.length} tokens, expected n_tokens ${c.n_tokens}`;
  if (truncated !== c.truncated) return `${at}: truncated ${truncated}, expected ${c.truncated}`;
  if (!same(ids, c.input_ids)) {
    const k = ids.findIndex((x, j) => x !== c.input_ids[j]);
    return `${at}: input_ids[${k}] is ${ids[k]}, expected ${c.input_ids[k]} (lengths ${ids.length} vs ${c.input_ids.length})`;
  }
  return null;
}

export async function runTokenizerCaseFrom(reader: FolderReader): Promise<TokenizerCaseResult> {
  const bytes = await reader.read('cases.json');
  if (!bytes) throw new TokenizerError(`${reader.where('cases.json')}: not found`);
  const cases = readCases(bytes, reader.where('cases.json'));
  const tok = await CLIPTokenizer.load(reader);
  const result: TokenizerCaseResult = { cases: cases.length, mismatches: 0 };
  for (const c of cases) {
    const m = tokenizerMismatch(tok, c);
    if (m === null) continue;
    result.mismatches++;
    result.firstMismatch ??= m;
  }
  return result;
}

export function runTokenizerCase(dir: string): Promise<TokenizerCaseResult> {
  return runTokenizerCaseFrom(nodeFolderReader(dir));
}
