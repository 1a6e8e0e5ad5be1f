// Prompt cleanup before CLIP's pre-tokenizer, as transformers' CLIPTokenizer does it with ftfy
// installed: fix_text, collapse whitespace runs, strip, lower-case.

// Python's str whitespace (what `re`'s \s and str.strip() use), which differs from JavaScript's
// \s: Python counts U+001C-U+001F and U+0085, JavaScript counts U+FEFF.
export const PY_WHITESPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

const WS_RUN = new RegExp(`[${PY_WHITESPACE}]+`, 'gu');
const EDGE_WS = new RegExp(`^[${PY_WHITESPACE}]+|[${PY_WHITESPACE}]+$`, 'gu');
// ftfy's uncurl_quotes (on by default): typographic quotes become ASCII ones.
const CURLY_SINGLE = /[\u02bc\u2018-\u201b]/gu;
const CURLY_DOUBLE = /[\u201c-\u201f]/gu;

/**
 * The subset of ftfy.fix_text that ordinary prompts meet (NFC, straight quotes); mojibake repair,
 * HTML unescaping, ligature and width folding are not done.
 */
export function fixText(text: string): string {
  return text.normalize('NFC').replace(CURLY_SINGLE, "'").replace(CURLY_DOUBLE, '"');
}

export function cleanText(text: string): string {
  return fixText(text).replace(WS_RUN, ' ').replace(EDGE_WS, '').toLowerCase();
}
