// Whether a source string is fetched or read from disk: a URL (any scheme://) always goes through
// fetch, and so does every string outside Node (a relative URL in a page or a worker); in Node,
// anything else is a path.

/** Node itself: not a page, nor a worker (whose bundlers may define `process`). */
export function isNode(): boolean {
  return typeof process !== 'undefined' && !!process.versions?.node && typeof (globalThis as { document?: unknown }).document === 'undefined' && typeof (globalThis as { importScripts?: unknown }).importScripts === 'undefined';
}

export function isUrlSource(source: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(source) || !isNode();
}
