// Hub sources without a network: hf: forms, revision encoding (as huggingface_hub's hf_hub_url
// quotes it), endpoints, and the errors for malformed sources.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hubRepoOfUrl, isHubSource, parseHubSource, resolveHubSource } from '../../src/io/hub.ts';
import { ModelSourceError } from '../../src/errors.ts';

let savedEnv: string | undefined;
beforeEach(() => {
  savedEnv = process.env.HF_ENDPOINT;
  delete process.env.HF_ENDPOINT;
});
afterEach(() => {
  if (savedEnv === undefined) delete process.env.HF_ENDPOINT;
  else process.env.HF_ENDPOINT = savedEnv;
});

describe('resolveHubSource', () => {
  it('is null for anything that is not an hf: source', () => {
    for (const s of ['weights/fashion-ldm', 'https://huggingface.co/stabilityai/sd-turbo/resolve/main/', '/abs/path', 'hf', 'huggingface:x/y']) {
      expect(resolveHubSource(s)).toBeNull();
      expect(isHubSource(s)).toBe(false);
    }
  });

  const good: [string, { repo: string; revision: string; subfolder: string; baseUrl: string }][] = [
    ['hf:stabilityai/sd-turbo', { repo: 'stabilityai/sd-turbo', revision: 'main', subfolder: '', baseUrl: 'https://huggingface.co/stabilityai/sd-turbo/resolve/main/' }],
    ['hf://stabilityai/sdxl-turbo', { repo: 'stabilityai/sdxl-turbo', revision: 'main', subfolder: '', baseUrl: 'https://huggingface.co/stabilityai/sdxl-turbo/resolve/main/' }],
    ['HF:SimianLuo/LCM_Dreamshaper_v7/', { repo: 'SimianLuo/LCM_Dreamshaper_v7', revision: 'main', subfolder: '', baseUrl: 'https://huggingface.co/SimianLuo/LCM_Dreamshaper_v7/resolve/main/' }],
    ['hf:o/n@v1.0', { repo: 'o/n', revision: 'v1.0', subfolder: '', baseUrl: 'https://huggingface.co/o/n/resolve/v1.0/' }],
    ['hf:o/n@0123456789abcdef0123456789abcdef01234567', { repo: 'o/n', revision: '0123456789abcdef0123456789abcdef01234567', subfolder: '', baseUrl: 'https://huggingface.co/o/n/resolve/0123456789abcdef0123456789abcdef01234567/' }],
    // quote(revision, safe=''): the slashes of a PR ref are encoded, so the ref is one path segment.
    ['hf:o/n@refs/pr/12', { repo: 'o/n', revision: 'refs/pr/12', subfolder: '', baseUrl: 'https://huggingface.co/o/n/resolve/refs%2Fpr%2F12/' }],
    ['hf:o/n@refs/pr/12/sub/dir', { repo: 'o/n', revision: 'refs/pr/12', subfolder: 'sub/dir', baseUrl: 'https://huggingface.co/o/n/resolve/refs%2Fpr%2F12/sub/dir/' }],
    ['hf:o/n@refs/convert/parquet', { repo: 'o/n', revision: 'refs/convert/parquet', subfolder: '', baseUrl: 'https://huggingface.co/o/n/resolve/refs%2Fconvert%2Fparquet/' }],
    // A branch with a slash is percent-encoded in the source (as HfFileSystem paths), and stays so.
    ['hf:o/n@feature%2Fx/unet', { repo: 'o/n', revision: 'feature/x', subfolder: 'unet', baseUrl: 'https://huggingface.co/o/n/resolve/feature%2Fx/unet/' }],
    ["hf:o/n@it's(1)", { repo: 'o/n', revision: "it's(1)", subfolder: '', baseUrl: 'https://huggingface.co/o/n/resolve/it%27s%281%29/' }],
    ['hf:o/n/models/my model', { repo: 'o/n', revision: 'main', subfolder: 'models/my model', baseUrl: 'https://huggingface.co/o/n/resolve/main/models/my%20model/' }],
    ['hf:o/n@dev/a', { repo: 'o/n', revision: 'dev', subfolder: 'a', baseUrl: 'https://huggingface.co/o/n/resolve/dev/a/' }],
  ];
  it.each(good)('%s', (source, want) => {
    expect(isHubSource(source)).toBe(true);
    expect(resolveHubSource(source)).toEqual({ ...want, preferVariant: 'fp16' });
  });

  it('takes the revision option when the source names none, and refuses a contradicting one', () => {
    expect(resolveHubSource('hf:o/n', { revision: 'refs/pr/3' })!.baseUrl).toBe('https://huggingface.co/o/n/resolve/refs%2Fpr%2F3/');
    expect(resolveHubSource('hf:o/n@v2', { revision: 'v2' })!.revision).toBe('v2');
    expect(() => resolveHubSource('hf:o/n@v2', { revision: 'main' })).toThrow(/hf:o\/n@v2 names revision v2 but the revision option is main/);
    expect(() => resolveHubSource('hf:o/n', { revision: '' })).toThrow(ModelSourceError);
  });

  it('reads from an endpoint option, else HF_ENDPOINT, else huggingface.co', () => {
    expect(resolveHubSource('hf:o/n', { endpoint: 'http://127.0.0.1:8080/hub/' })!.baseUrl).toBe('http://127.0.0.1:8080/hub/o/n/resolve/main/');
    process.env.HF_ENDPOINT = 'https://hf-mirror.com';
    expect(resolveHubSource('hf:o/n@refs/pr/1')!.baseUrl).toBe('https://hf-mirror.com/o/n/resolve/refs%2Fpr%2F1/');
    expect(resolveHubSource('hf:o/n', { endpoint: 'https://huggingface.co' })!.baseUrl).toBe('https://huggingface.co/o/n/resolve/main/');
    for (const endpoint of ['huggingface.co', 'ftp://x', 'https://h/?token=1']) expect(() => resolveHubSource('hf:o/n', { endpoint })).toThrow(ModelSourceError);
  });

  const bad: [string, RegExp][] = [
    ['hf:', /no repository named/],
    ['hf:sd-turbo', /must be owner\/name/],
    ['hf:/name', /must be owner\/name/],
    ['hf:o/', /must be owner\/name/],
    ['hf:o/n@', /revision after '@' is empty/],
    ['hf:o/n@a@b', /more than one '@'/],
    ['hf:o/n/unet@main', /the revision comes right after the repository: hf:o\/n@<revision>\/unet/],
    ['hf:o/n@main//unet', /empty path segment/],
    ['hf:o/n/../x', /cannot contain '\.' or '\.\.'/],
    ['hf:o/n@a..b', /not a valid revision/],
    ['hf:o/n@bad%2', /not valid percent-encoding/],
    ['hf:o/n@has space', /not a valid revision/],
    ['hf:o/n?x=1', /no query or fragment/],
    ['hf:datasets/o/n', /only model repositories/],
    ['hf:o--x/n', /not a valid Hub repository name part/],
    ['hf:o/n.', /not a valid Hub repository name part/],
    ['hf:o/ünï', /not a valid Hub repository name part/],
    [`hf:o/${'n'.repeat(100)}`, /longer than the Hub's 96 characters/],
  ];
  it.each(bad)('refuses %s with a ModelSourceError', (source, message) => {
    expect(() => resolveHubSource(source)).toThrow(ModelSourceError);
    expect(() => resolveHubSource(source)).toThrow(message);
  });

  it('parses without resolving: the revision is null when the source names none', () => {
    expect(parseHubSource('hf:o/n')).toEqual({ repo: 'o/n', revision: null, subfolder: '' });
    expect(parseHubSource('./o/n')).toBeNull();
  });
});

describe('hubRepoOfUrl', () => {
  it("names the repository of a Hub resolve URL, and nothing else's", () => {
    expect(hubRepoOfUrl('https://huggingface.co/stabilityai/sd-turbo/resolve/main/')).toBe('stabilityai/sd-turbo');
    expect(hubRepoOfUrl('https://huggingface.co/o/n/resolve/refs%2Fpr%2F1/unet/')).toBe('o/n');
    expect(hubRepoOfUrl('https://huggingface.co/o/n/tree/main')).toBeNull();
    expect(hubRepoOfUrl('https://example.com/o/n/resolve/main/')).toBeNull();
    expect(hubRepoOfUrl('http://127.0.0.1:9/hub/o/n/resolve/main/', 'http://127.0.0.1:9/hub')).toBe('o/n');
    expect(hubRepoOfUrl('not a url')).toBeNull();
  });
});
