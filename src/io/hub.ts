// Hugging Face Hub sources: `hf:owner/name` names a model repository, and resolves to the base
// URL its files are served from, https://huggingface.co/owner/name/resolve/<revision>/, which the
// URL reader (url_reader.ts) then reads like any other folder by URL (the Hub answers CORS, and
// redirects large files to its CDN; fetch follows). The form is huggingface_hub's HfFileSystem
// path without a repo type:
//
//   hf:owner/name                     the main branch
//   hf:owner/name@revision            a branch, a tag or a commit sha
//   hf:owner/name@refs/pr/3           a pull request's head (also refs/convert/<name>)
//   hf:owner/name@feature%2Fx         a branch with a slash in its name: percent-encode the slash
//   hf:owner/name[@revision]/sub/dir  a model folder below the repository's root
//
// (`hf://owner/name` is taken too.) The revision goes into the URL as one path segment, encoded as
// huggingface_hub's hf_hub_url does (quote(revision, safe='')): refs/pr/3 → refs%2Fpr%2F3.
//
// Hub sources prefer the fp16 weight files where a repository has them (preferVariant): most
// diffusers repositories ship `diffusion_pytorch_model.fp16.safetensors` next to the float32 file,
// at half the download; Fresco computes in f16 where the device allows anyway, and a folder loader
// that is given the preference tries the fp16 file first and falls back to the plain one.
import { ModelSourceError } from '../errors.ts';

/** The weight file variants a folder loader can be asked to prefer (diffusers' `variant`). */
export type WeightVariant = 'fp16';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

export interface HubSourceOptions {
  /**
   * The revision when the source names none (a source's own `@revision` must agree with it).
   * Default 'main'.
   */
  revision?: string;
  /**
   * Where the Hub is served: a mirror, or a test server. Default: HF_ENDPOINT in Node's
   * environment (as huggingface_hub), else https://huggingface.co.
   */
  endpoint?: string;
}

export interface HubSource {
  /** 'owner/name' as written in the source. */
  repo: string;
  /** The revision, decoded ('main', 'v1.0', 'refs/pr/3', a commit sha). */
  revision: string;
  /** The folder below the repository's root ('' for the root), without slashes at its ends. */
  subfolder: string;
  /** The URL the model folder's files are read under, ending in '/'. */
  baseUrl: string;
  /** Weight files to prefer where the repository has them (see the file's header). */
  preferVariant: WeightVariant;
}

const PREFIX = /^hf:(\/\/)?/i;
/** A repo id part as huggingface_hub's validate_repo_id allows: word characters, '-' and '.'. */
const PART = /^[\w][\w.-]*$/;
/** HfFileSystem's revisions that contain slashes of their own. */
const SPECIAL_REF = /^(refs\/pr\/\d+|refs\/convert\/\w+)(?=\/|$)/;

/** Whether `source` is meant as a Hub source (it starts with `hf:`), well formed or not. */
export function isHubSource(source: string): boolean {
  return PREFIX.test(source);
}

/** Python's urllib.parse.quote(s, safe=''): encodeURIComponent, plus the few marks it leaves alone. */
function quoteSegment(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function decode(part: string, what: string, source: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new ModelSourceError(`${source}: the ${what} ${JSON.stringify(part)} is not valid percent-encoding`);
  }
}

function checkRepoId(owner: string, name: string, source: string): void {
  const repo = `${owner}/${name}`;
  const bad = [owner, name].find((p) => !PART.test(p) || /[.-]$/.test(p) || p.includes('--') || p.includes('..'));
  if (bad !== undefined) {
    throw new ModelSourceError(`${source}: ${JSON.stringify(bad)} is not a valid Hub repository name part (letters, digits, '_', '-' and '.'; not ending in '-' or '.', no '--' or '..')`);
  }
  if (repo.length > 96) throw new ModelSourceError(`${source}: the repository id ${repo} is longer than the Hub's 96 characters`);
}

function checkRevision(revision: string, source: string): void {
  if (revision === '') throw new ModelSourceError(`${source}: the revision after '@' is empty (leave '@' out for the main branch)`);
  // A ref name git itself would refuse (git check-ref-format) is a typo, not a revision.
  if (/[\s~^:?*[\\]|\.\.|@\{|^\/|\/$|\/\/|\.lock(\/|$)|^\.|\/\./.test(revision) || /[\x00-\x1f\x7f]/.test(revision)) {
    throw new ModelSourceError(`${source}: ${JSON.stringify(revision)} is not a valid revision (a branch, a tag, a commit sha or refs/pr/N)`);
  }
}

function endpointFrom(opts: HubSourceOptions): string {
  const env = typeof process !== 'undefined' ? process.env?.HF_ENDPOINT : undefined;
  const raw = opts.endpoint ?? (env || DEFAULT_HUB_ENDPOINT);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ModelSourceError(`Hub endpoint ${JSON.stringify(raw)} is not an absolute URL (such as ${DEFAULT_HUB_ENDPOINT})`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ModelSourceError(`Hub endpoint ${raw}: only http and https are supported`);
  if (url.search || url.hash) throw new ModelSourceError(`Hub endpoint ${raw}: a query or fragment cannot be part of it`);
  return url.href.replace(/\/+$/, '');
}

/**
 * The parts of an `hf:` source: repository, revision (null when it names none) and subfolder.
 * Null when `source` does not start with `hf:`; a ModelSourceError when it does but is malformed.
 */
export function parseHubSource(source: string): { repo: string; revision: string | null; subfolder: string } | null {
  const m = PREFIX.exec(source);
  if (!m) return null;
  // One trailing slash, as a folder URL would have, is allowed.
  const rest = source.slice(m[0].length).replace(/\/$/, '');
  const example = 'expected hf:owner/name, hf:owner/name@revision or hf:owner/name@revision/subfolder';
  if (rest === '') throw new ModelSourceError(`${source}: no repository named (${example})`);
  if (/[?#]/.test(rest)) throw new ModelSourceError(`${source}: a Hub source has no query or fragment (${example})`);
  if (/^(datasets|spaces)\//.test(rest)) throw new ModelSourceError(`${source}: only model repositories can be loaded, not ${rest.split('/')[0]}`);
  const at = rest.indexOf('@');
  const head = at < 0 ? rest : rest.slice(0, at);
  const parts = head.split('/');
  const [owner, name, ...beforeAt] = parts;
  if (name === undefined || owner === '' || name === '') throw new ModelSourceError(`${source}: the repository must be owner/name (${example})`);
  checkRepoId(owner!, name, source);
  let revision: string | null = null;
  let sub: string[] = beforeAt;
  if (at >= 0) {
    if (beforeAt.length) throw new ModelSourceError(`${source}: the revision comes right after the repository: hf:${owner}/${name}@<revision>/${beforeAt.join('/')}`);
    const tail = rest.slice(at + 1);
    if (tail.includes('@')) throw new ModelSourceError(`${source}: more than one '@' (${example})`);
    const special = SPECIAL_REF.exec(tail);
    const raw = special ? special[1]! : tail.split('/')[0]!;
    revision = decode(raw, 'revision', source);
    checkRevision(revision, source);
    sub = tail.slice(raw.length).split('/').filter((_, i) => i > 0);
  }
  if (sub.some((p) => p === '')) throw new ModelSourceError(`${source}: the subfolder has an empty path segment`);
  const subfolder = sub.map((p) => decode(p, 'subfolder', source)).join('/');
  if (subfolder.split('/').some((p) => p === '.' || p === '..')) throw new ModelSourceError(`${source}: the subfolder cannot contain '.' or '..'`);
  return { repo: `${owner}/${name}`, revision, subfolder };
}

/**
 * An `hf:` source resolved to the URL its files are read from; null when `source` is not an
 * `hf:` source (a URL or a path). Malformed sources, and a revision option that contradicts the
 * source's own, are ModelSourceErrors.
 */
export function resolveHubSource(source: string, opts: HubSourceOptions = {}): HubSource | null {
  const parsed = parseHubSource(source);
  if (!parsed) return null;
  if (opts.revision !== undefined) checkRevision(opts.revision, `revision option for ${source}`);
  if (parsed.revision !== null && opts.revision !== undefined && parsed.revision !== opts.revision) {
    throw new ModelSourceError(`${source} names revision ${parsed.revision} but the revision option is ${opts.revision}; give one of them`);
  }
  const revision = parsed.revision ?? opts.revision ?? 'main';
  const sub = parsed.subfolder ? `${parsed.subfolder.split('/').map(quoteSegment).join('/')}/` : '';
  const baseUrl = `${endpointFrom(opts)}/${parsed.repo}/resolve/${quoteSegment(revision)}/${sub}`;
  return { repo: parsed.repo, revision, subfolder: parsed.subfolder, baseUrl, preferVariant: 'fp16' };
}

/**
 * The repository a Hub resolve URL reads from (https://huggingface.co/owner/name/resolve/rev/...),
 * or null for any other URL: a model loaded by its Hub URL is recognised as its `hf:` form is.
 * Only the default endpoint's host (or `endpoint`'s) counts.
 */
export function hubRepoOfUrl(url: string, endpoint: string = DEFAULT_HUB_ENDPOINT): string | null {
  let u: URL, e: URL;
  try {
    u = new URL(url);
    e = new URL(endpoint);
  } catch {
    return null;
  }
  if (u.host !== e.host) return null;
  const base = e.pathname.replace(/\/+$/, '');
  if (!u.pathname.startsWith(`${base}/`)) return null;
  const m = /^\/([^/]+)\/([^/]+)\/resolve\//.exec(u.pathname.slice(base.length));
  if (!m || !PART.test(m[1]!) || !PART.test(m[2]!)) return null;
  return `${m[1]}/${m[2]}`;
}
