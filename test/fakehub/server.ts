/**
 * A local fake of the Hugging Face Hub: the subset of its HTTP API that `@huggingface/hub` and
 * Alloy's range reads use (docs/browser.md §2), on 127.0.0.1 with random ports, behaving like the
 * real Hub where it matters: `resolve` redirects LFS files (302) to a CDN on another origin that
 * serves `Range` with 206 and `Content-Range`; ETags, `X-Linked-Size`, CORS with exposed headers;
 * 401 for a bad token, 404 with `X-Error-Code` for a missing repo, file or revision; repo
 * creation, preupload, LFS batch (basic, or multipart above a size), part uploads and commits,
 * which are recorded. Every request is logged (tests assert what was and was not fetched), and
 * faults can be switched on: slow bodies, failing or aborted range requests, rate limits (429).
 * The download origin is strict like the real CDN (no preflight, simple GETs only) and uploads
 * go to a separate storage origin; Space repos (`spaces/owner/name`) and OAuth are served too.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';

export interface RequestRecord {
  readonly id: number;
  /** `cdn`: the download origin `resolve` redirects to (LFS CDN and Xet bridge); `storage`: where uploads go. */
  readonly server: 'hub' | 'cdn' | 'storage';
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly range: string | null;
  readonly authorization: string | null;
  status: number;
  /** Body bytes written (the whole body unless aborted). */
  bytesSent: number;
  /** For CDN reads: the repo file served. */
  file?: { repo: string; path: string };
  /** Set when the fault injector aborted, failed or rate-limited it. */
  fault?: 'fail' | 'abort' | 'hold' | 'rate-limit';
  /**
   * Why the strict CDN refused it: what a browser would have preflighted (and the real CDN,
   * which answers no preflight, refused), e.g. an `Authorization` header or a suffix range.
   */
  refused?: string;
}

export interface FakeRepoOptions {
  readonly private?: boolean;
  /** Gated: reading files needs a valid token whose user is in `grantedUsers`. */
  readonly gated?: boolean;
  readonly grantedUsers?: readonly string[];
  readonly downloads?: number;
  readonly likes?: number;
  /** Files stored as LFS (by default: *.safetensors, *.bin, and files of 10 MB or more). */
  readonly lfs?: (path: string, size: number) => boolean;
  readonly owner?: string;
  /**
   * How the Hub stores the LFS files: `xet` (today's default: `xetHash` in listings, `resolve`
   * redirects to the Xet bridge) or `lfs` (legacy LFS CDN). Default `xet`.
   */
  readonly storage?: 'xet' | 'lfs';
  /** Space repos (`spaces/owner/name`): the SDK given at creation. */
  readonly sdk?: string;
}

export interface FakeCommit {
  readonly repo: string;
  readonly oid: string;
  readonly summary: string;
  readonly files: ReadonlyMap<string, Uint8Array>;
  readonly lfsFiles: readonly string[];
  readonly deleted: readonly string[];
}

interface StoredFile {
  bytes: Uint8Array;
  lfs: boolean;
  sha256: string;
  gitOid: string;
}

/** A fake Xet hash of a file (64 hex digits, distinct from its sha256). */
const xetHashOf = (file: { sha256: string }): string => createHash('sha256').update(`xet:${file.sha256}`).digest('hex');

interface Repo {
  id: string;
  commits: { oid: string; files: Map<string, StoredFile> }[];
  branches: Map<string, string>;
  options: FakeRepoOptions;
  lastModified: string;
}

export interface FaultOptions {
  /** Delay before every answer (ms). */
  delayMs?: number;
  /** Throttle CDN bodies to this rate (bytes per second), sent in small pieces. */
  bytesPerSecond?: number;
  /** Decides per CDN range request (1-based count `n` of range requests so far) whether to fail it. */
  rangeFault?: (n: number, record: RequestRecord) => 'fail' | 'abort' | undefined;
  /**
   * Decides per CDN download (ranged or whole) whether to hold it: no answer until the client
   * goes away, as when a page is reloaded mid-download.
   */
  hold?: (record: RequestRecord) => boolean;
  /**
   * Serves altered content for the files it returns true for (the last byte flipped, so headers
   * still parse) while the listing keeps the true hashes: what a tampering proxy or mirror does.
   */
  tamper?: (repo: string, path: string) => boolean;
  /**
   * Rate limit on `resolve` (the Hub's "Resolvers" quota): given the 1-based count of resolve
   * requests so far, the seconds to put in `Retry-After` of a 429, or undefined to serve it.
   */
  rateLimit?: (n: number, record: RequestRecord) => number | undefined;
}

export interface TokenInfo {
  readonly user: string;
  readonly role: 'read' | 'write' | 'fineGrained';
  readonly orgs?: readonly string[];
  /** OAuth tokens: the scopes granted (creating a repo needs `manage-repos`, pushing `write-repos`). */
  readonly scopes?: readonly string[];
}

/** The OAuth client the fake Hub knows (a Space's injected OAUTH_CLIENT_ID, in tests). */
export const OAUTH_CLIENT_ID = 'fake-oauth-client';

export interface FakeHubOptions {
  /** Entries per tree page (the real Hub uses 1000; small pages test pagination). Default 50. */
  readonly treePageSize?: number;
  /** LFS objects at or above this size are uploaded multipart. Default 5 MiB. */
  readonly multipartThreshold?: number;
  /** Part size of multipart uploads. Default 1 MiB. */
  readonly multipartChunkSize?: number;
}

const EXPOSED = [
  'ETag', 'Content-Range', 'Content-Length', 'Accept-Ranges', 'Link', 'X-Linked-Size', 'X-Linked-ETag',
  'X-Error-Code', 'X-Error-Message', 'X-Repo-Commit', 'X-Request-Id', 'Location', 'Retry-After', 'X-Xet-Hash',
].join(', ');

/** The one `Range` form a browser sends without a preflight (fetch spec: CORS-safelisted). */
const SIMPLE_RANGE = /^bytes=(\d+)-(\d*)$/;

export const WRITE_TOKEN = 'hf_fake_write_token';
export const READ_TOKEN = 'hf_fake_read_token';
export const FAKE_USER = 'alloy-tester';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const gitOid = (bytes: Uint8Array): string =>
  createHash('sha1').update(`blob ${bytes.byteLength}\0`).update(bytes).digest('hex');
const newCommitOid = (): string => randomBytes(20).toString('hex');
const lfsPointer = (file: { sha256: string; bytes: Uint8Array }): Uint8Array =>
  new TextEncoder().encode(`version https://git-lfs.github.com/spec/v1\noid sha256:${file.sha256}\nsize ${file.bytes.byteLength}\n`);
const defaultLfs = (path: string, size: number): boolean => /\.(safetensors|bin|gguf|pt|pth)$/.test(path) || size >= 10 * 1024 * 1024;

export class FakeHub {
  readonly requests: RequestRecord[] = [];
  readonly commits: FakeCommit[] = [];
  readonly tokens = new Map<string, TokenInfo>([
    [WRITE_TOKEN, { user: FAKE_USER, role: 'write', orgs: ['alloy-org'] }],
    [READ_TOKEN, { user: FAKE_USER, role: 'read' }],
  ]);
  faults: FaultOptions = {};
  /** Range requests held by the `hold` fault, still open. */
  private readonly held = new Set<ServerResponse>();
  /** LFS objects uploaded (oid → bytes). */
  readonly lfsObjects = new Map<string, Uint8Array>();

  private readonly repos = new Map<string, Repo>();
  private readonly multipartParts = new Map<string, Map<number, Uint8Array>>();
  private rangeCount = 0;
  private resolveCount = 0;
  /** OAuth codes handed out by /oauth/authorize (code → what the token exchange must match). */
  private readonly oauthCodes = new Map<string, { codeChallenge: string; redirectUri: string; scope: string }>();
  /** Access tokens minted by the OAuth token endpoint (also in `tokens`). */
  readonly oauthTokens: string[] = [];
  private nextId = 1;
  private hubServer!: Server;
  private cdnServer!: Server;
  private storageServer!: Server;
  url = '';
  cdnUrl = '';
  storageUrl = '';

  private constructor(private readonly options: FakeHubOptions) {}

  static async start(options: FakeHubOptions = {}): Promise<FakeHub> {
    const hub = new FakeHub(options);
    hub.hubServer = createServer((req, res) => void hub.handle('hub', req, res));
    hub.cdnServer = createServer((req, res) => void hub.handle('cdn', req, res));
    hub.storageServer = createServer((req, res) => void hub.handle('storage', req, res));
    const listen = (server: Server): Promise<number> =>
      new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
    hub.url = `http://127.0.0.1:${await listen(hub.hubServer)}`;
    hub.cdnUrl = `http://127.0.0.1:${await listen(hub.cdnServer)}`;
    hub.storageUrl = `http://127.0.0.1:${await listen(hub.storageServer)}`;
    return hub;
  }

  async close(): Promise<void> {
    for (const server of [this.hubServer, this.cdnServer, this.storageServer]) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Test API

  addRepo(id: string, files: Readonly<Record<string, Uint8Array | string>>, options: FakeRepoOptions = {}): { commit: string } {
    const lfs = options.lfs ?? defaultLfs;
    const stored = new Map<string, StoredFile>();
    for (const [path, content] of Object.entries(files)) {
      const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
      stored.set(path, { bytes, lfs: lfs(path, bytes.byteLength), sha256: sha256(bytes), gitOid: gitOid(bytes) });
    }
    const oid = newCommitOid();
    this.repos.set(id, {
      id,
      commits: [{ oid, files: stored }],
      branches: new Map([['main', oid]]),
      options: { owner: id.split('/')[0], ...options },
      lastModified: new Date().toISOString(),
    });
    return { commit: oid };
  }

  /** Serves a model folder from disk (every file below `dir`). */
  addModelDir(id: string, dir: string, options: FakeRepoOptions = {}): { commit: string } {
    const files: Record<string, Uint8Array> = {};
    const walk = (d: string): void => {
      for (const name of readdirSync(d)) {
        const full = join(d, name);
        if (statSync(full).isDirectory()) walk(full);
        else files[relative(dir, full).split('\\').join('/')] = new Uint8Array(readFileSync(full));
      }
    };
    walk(dir);
    return this.addRepo(id, files, options);
  }

  /** The files of a repo at a branch or commit (tests check pushed content). */
  repoFiles(id: string, revision = 'main'): Map<string, Uint8Array> | null {
    const repo = this.repos.get(id);
    const commit = repo && this.findCommit(repo, revision);
    return commit ? new Map([...commit.files].map(([p, f]) => [p, f.bytes])) : null;
  }

  headCommit(id: string): string | undefined {
    return this.repos.get(id)?.branches.get('main');
  }

  sha256Of(id: string, path: string): string | undefined {
    const repo = this.repos.get(id);
    return repo && this.findCommit(repo, 'main')?.files.get(path)?.sha256;
  }

  /** CDN range reads of one repo file, in order. */
  rangeReads(repo: string, path: string): RequestRecord[] {
    return this.requests.filter((r) => r.server === 'cdn' && r.file?.repo === repo && r.file.path === path && r.range !== null);
  }

  /** Range requests the `hold` fault keeps waiting now. */
  get heldRequests(): number {
    return this.held.size;
  }

  resetLog(): void {
    this.requests.length = 0;
    this.rangeCount = 0;
    this.resolveCount = 0;
  }

  // -------------------------------------------------------------------------------------------

  private findCommit(repo: Repo, revision: string): Repo['commits'][number] | undefined {
    const oid = repo.branches.get(revision) ?? revision;
    return repo.commits.find((c) => c.oid === oid);
  }

  private async handle(server: RequestRecord['server'], req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const record: RequestRecord = {
      id: this.nextId++,
      server,
      method: req.method ?? 'GET',
      path: decodeURIComponent(url.pathname),
      query: url.search,
      range: typeof req.headers.range === 'string' ? req.headers.range : null,
      authorization: typeof req.headers.authorization === 'string' ? req.headers.authorization : null,
      status: 0,
      bytesSent: 0,
    };
    this.requests.push(record);
    if (server === 'cdn') return this.handleStrictCdn(record, url, req, res);
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Expose-Headers', EXPOSED);
    res.setHeader('X-Request-Id', `fake-${record.id}`);
    try {
      if (record.method === 'OPTIONS') {
        res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, POST, PUT, DELETE, OPTIONS');
        res.setHeader(
          'Access-Control-Allow-Headers',
          req.headers['access-control-request-headers'] ?? 'Authorization, Range, Content-Type, Accept, X-Request-Id',
        );
        res.setHeader('Access-Control-Max-Age', '600');
        return this.send(record, res, 204);
      }
      if (this.faults.delayMs) await new Promise((r) => setTimeout(r, this.faults.delayMs));
      const body = record.method === 'POST' || record.method === 'PUT' ? await readBody(req) : new Uint8Array(0);
      if (server === 'storage') return await this.handleStorage(record, res, body);
      return await this.handleHub(record, url, req, res, body);
    } catch (error) {
      if (!res.headersSent) this.json(record, res, 500, { error: `fake hub: ${(error as Error).message}` });
      else res.destroy();
    }
  }

  private auth(record: RequestRecord): { token: TokenInfo | null; invalid: boolean } {
    const header = record.authorization;
    if (!header) return { token: null, invalid: false };
    const token = header.replace(/^Bearer\s+/i, '');
    const info = this.tokens.get(token);
    return { token: info ?? null, invalid: !info };
  }

  private async handleHub(record: RequestRecord, url: URL, req: IncomingMessage, res: ServerResponse, body: Uint8Array): Promise<void> {
    const path = record.path;
    const { token, invalid } = this.auth(record);
    if (invalid) return this.json(record, res, 401, { error: 'Invalid credentials in Authorization header' });
    let m: RegExpExecArray | null;

    if (path === '/.well-known/openid-configuration' && record.method === 'GET') {
      return this.json(record, res, 200, {
        issuer: this.url,
        authorization_endpoint: `${this.url}/oauth/authorize`,
        token_endpoint: `${this.url}/oauth/token`,
        userinfo_endpoint: `${this.url}/oauth/userinfo`,
        jwks_uri: `${this.url}/oauth/jwks`,
        response_types_supported: ['code'],
        code_challenge_methods_supported: ['S256'],
        scopes_supported: ['openid', 'profile', 'email', 'read-repos', 'write-repos', 'manage-repos', 'gated-repos', 'contribute-repos'],
      });
    }
    if (path === '/oauth/authorize' && record.method === 'GET') return this.oauthAuthorize(record, url, res);
    if (path === '/oauth/token' && record.method === 'POST') return this.oauthToken(record, res, body);
    if (path === '/oauth/userinfo' && record.method === 'GET') {
      if (!token) return this.json(record, res, 401, { error: 'invalid_token' });
      return this.json(record, res, 200, {
        sub: `id-${token.user}`,
        name: 'Alloy Tester',
        preferred_username: token.user,
        profile: `${this.url}/${token.user}`,
        picture: '',
        isPro: false,
        canPay: false,
        orgs: (token.orgs ?? []).map((name) => ({ sub: `id-${name}`, name, preferred_username: name, picture: '', isEnterprise: false })),
      });
    }

    if (path === '/api/whoami-v2') {
      if (!token) return this.json(record, res, 401, { error: 'You must be logged in' });
      return this.json(record, res, 200, {
        type: 'user',
        id: `id-${token.user}`,
        name: token.user,
        fullname: 'Alloy Tester',
        email: 'tester@example.com',
        emailVerified: true,
        isPro: false,
        canPay: false,
        avatarUrl: '',
        periodEnd: null,
        billingMode: 'postpaid',
        orgs: (token.orgs ?? []).map((name) => ({ type: 'org', id: `id-${name}`, name, fullname: name, email: null, canPay: false, avatarUrl: '', periodEnd: null })),
        auth: { type: 'access_token', accessToken: { displayName: 'test', role: token.role, createdAt: '2025-01-01T00:00:00.000Z' } },
      });
    }

    if (path === '/api/models' && record.method === 'GET') {
      const query = (url.searchParams.get('search') ?? '').toLowerCase();
      const limit = Number(url.searchParams.get('limit') ?? '1000');
      const hits = [...this.repos.values()]
        .filter((r) => !r.options.private || (token && r.options.owner === token.user))
        .filter((r) => r.id.toLowerCase().includes(query))
        .sort((a, b) => (b.options.downloads ?? 0) - (a.options.downloads ?? 0))
        .slice(0, limit)
        .map((r) => this.modelJson(r, this.findCommit(r, 'main')!.oid));
      return this.json(record, res, 200, hits);
    }

    if (path === '/api/repos/create' && record.method === 'POST') {
      if (!token) return this.json(record, res, 401, { error: 'You must be logged in' });
      if (token.role === 'read' || (token.scopes && !token.scopes.includes('manage-repos'))) {
        return this.json(record, res, 403, { error: 'You have read access but not the required permissions for this operation.' });
      }
      const payload = JSON.parse(new TextDecoder().decode(body)) as { name: string; organization?: string; visibility?: string; type?: string; sdk?: string };
      const namespace = payload.organization ?? token.user;
      const type = payload.type ?? 'model';
      if (type !== 'model' && type !== 'space') return this.json(record, res, 400, { error: `fake hub: repo type "${type}" is not supported` });
      if (type === 'space' && !['static', 'gradio', 'docker'].includes(payload.sdk ?? '')) {
        return this.json(record, res, 400, { error: `"sdk" must be one of static, gradio, docker for a Space` });
      }
      if (namespace !== token.user && !(token.orgs ?? []).includes(namespace)) {
        return this.json(record, res, 403, { error: `You don't have the rights to create a ${type} under the namespace "${namespace}"` });
      }
      const name = `${namespace}/${payload.name}`;
      const id = type === 'space' ? `spaces/${name}` : name;
      if (this.repos.has(id)) return this.json(record, res, 409, { error: `You already created this ${type} repo`, url: `${this.url}/${id}` });
      const oid = newCommitOid();
      this.repos.set(id, {
        id,
        commits: [{ oid, files: new Map([['.gitattributes', storedText('*.safetensors filter=lfs diff=lfs merge=lfs -text\n')]]) }],
        branches: new Map([['main', oid]]),
        options: { owner: namespace, private: payload.visibility === 'private', ...(type === 'space' ? { sdk: payload.sdk } : {}) },
        lastModified: new Date().toISOString(),
      });
      return this.json(record, res, 200, { url: `${this.url}/${id}`, name, id: `id-${id}` });
    }

    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path))) {
      const repo = this.readableRepo(record, res, m[1], token);
      if (!repo) return;
      const commit = this.findCommit(repo, m[2]);
      if (!commit) return this.error(record, res, 404, 'RevisionNotFound', `Invalid rev id: ${m[2]}`);
      return this.json(record, res, 200, this.modelJson(repo, commit.oid));
    }

    if ((m = /^\/api\/(models|spaces)\/([^/]+\/[^/]+)\/tree\/([^/]+)(?:\/(.*))?$/.exec(path))) {
      const repo = this.readableRepo(record, res, repoKey(m[1], m[2]), token);
      if (!repo) return;
      const commit = this.findCommit(repo, m[3]);
      if (!commit) return this.error(record, res, 404, 'RevisionNotFound', `Invalid rev id: ${m[3]}`);
      const prefix = m[4] ? `${m[4].replace(/\/$/, '')}/` : '';
      const recursive = url.searchParams.get('recursive') === 'true';
      const entries = this.treeEntries(repo, commit.files, prefix, recursive);
      const pageSize = this.options.treePageSize ?? 50;
      const cursor = Number(url.searchParams.get('cursor') ?? '0');
      const page = entries.slice(cursor, cursor + pageSize);
      if (cursor + pageSize < entries.length) {
        const next = new URL(`${this.url}${url.pathname}`);
        url.searchParams.forEach((v, k) => next.searchParams.set(k, v));
        next.searchParams.set('cursor', String(cursor + pageSize));
        res.setHeader('Link', `<${next.href}>; rel="next"`);
      }
      return this.json(record, res, 200, page);
    }

    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/paths-info\/(.+)$/.exec(path)) && record.method === 'POST') {
      const repo = this.readableRepo(record, res, m[1], token);
      if (!repo) return;
      const commit = this.findCommit(repo, m[2]);
      if (!commit) return this.error(record, res, 404, 'RevisionNotFound', `Invalid rev id: ${m[2]}`);
      const payload = JSON.parse(new TextDecoder().decode(body)) as { paths: string[] };
      const found = payload.paths.filter((p) => commit.files.has(p)).map((p) => this.fileEntry(p, commit.files.get(p)!, repo));
      return this.json(record, res, 200, found);
    }

    if ((m = /^\/api\/(models|spaces)\/([^/]+\/[^/]+)\/preupload\/(.+)$/.exec(path)) && record.method === 'POST') {
      const repo = this.writableRepo(record, res, repoKey(m[1], m[2]), token);
      if (!repo) return;
      const payload = JSON.parse(new TextDecoder().decode(body)) as { files: { path: string; size: number; sample: string }[] };
      const lfs = repo.options.lfs ?? defaultLfs;
      return this.json(record, res, 200, {
        files: payload.files.map((f) => ({ path: f.path, uploadMode: lfs(f.path, f.size) ? 'lfs' : 'regular', shouldIgnore: false })),
      });
    }

    if ((m = /^\/api\/(models|spaces)\/([^/]+\/[^/]+)\/commit\/(.+)$/.exec(path)) && record.method === 'POST') {
      const repo = this.writableRepo(record, res, repoKey(m[1], m[2]), token);
      if (!repo) return;
      return this.commit(record, res, repo, m[3], body);
    }

    if ((m = /^\/api\/models\/([^/]+\/[^/]+)$/.exec(path)) && record.method === 'GET') {
      const repo = this.readableRepo(record, res, m[1], token);
      if (!repo) return;
      return this.json(record, res, 200, this.modelJson(repo, this.findCommit(repo, 'main')!.oid));
    }

    if ((m = /^\/((?:spaces\/)?[^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/.exec(path)) && record.method === 'POST') {
      const repo = this.writableRepo(record, res, m[1], token);
      if (!repo) return;
      const payload = JSON.parse(new TextDecoder().decode(body)) as { objects: { oid: string; size: number }[]; transfers: string[] };
      const threshold = this.options.multipartThreshold ?? 5 * 1024 * 1024;
      const chunk = this.options.multipartChunkSize ?? 1024 * 1024;
      const multipart = payload.objects.some((o) => o.size >= threshold);
      const objects = payload.objects.map((o) => {
        if (this.lfsObjects.has(o.oid)) return { oid: o.oid, size: o.size };
        if (o.size >= threshold) {
          const header: Record<string, string> = { chunk_size: String(chunk) };
          const parts = Math.ceil(o.size / chunk);
          for (let i = 1; i <= parts; i++) header[String(i).padStart(5, '0')] = `${this.storageUrl}/lfs-upload/${o.oid}/part/${i}`;
          return { oid: o.oid, size: o.size, actions: { upload: { href: `${this.storageUrl}/lfs-upload/${o.oid}/complete`, header } } };
        }
        return { oid: o.oid, size: o.size, actions: { upload: { href: `${this.storageUrl}/lfs-upload/${o.oid}` } } };
      });
      res.setHeader('Content-Type', 'application/vnd.git-lfs+json');
      return this.json(record, res, 200, { transfer: multipart ? 'multipart' : 'basic', objects }, 'application/vnd.git-lfs+json');
    }

    if ((m = /^\/([^/]+\/[^/]+)\/(resolve|raw)\/([^/]+)\/(.+)$/.exec(path)) && (record.method === 'GET' || record.method === 'HEAD')) {
      const repo = this.readableRepo(record, res, m[1], token);
      if (!repo) return;
      if (repo.options.gated && m[2] === 'resolve') {
        if (!token) return this.error(record, res, 401, 'GatedRepo', 'Access to this model is restricted. You must be authenticated to access it.');
        if (!(repo.options.grantedUsers ?? []).includes(token.user)) {
          return this.error(record, res, 403, 'GatedRepo', 'Access to this model is restricted and you are not in the authorized list.');
        }
      }
      const commit = this.findCommit(repo, m[3]);
      if (!commit) return this.error(record, res, 404, 'RevisionNotFound', `Invalid rev id: ${m[3]}`);
      const file = commit.files.get(m[4]);
      if (!file) return this.error(record, res, 404, 'EntryNotFound', `${m[4]} does not exist on "${m[3]}"`);
      if (m[2] === 'resolve') {
        const wait = this.faults.rateLimit?.(++this.resolveCount, record);
        if (wait !== undefined) {
          record.fault = 'rate-limit';
          res.setHeader('Retry-After', String(wait));
          return this.error(record, res, 429, 'RateLimited', 'You have exceeded our rate limit on resolvers. Retry later.');
        }
      }
      res.setHeader('X-Repo-Commit', commit.oid);
      if (m[2] === 'raw' && file.lfs) {
        const pointer = lfsPointer(file);
        res.setHeader('ETag', `"${gitOid(pointer)}"`);
        return this.sendBytes(record, req.method === 'HEAD', res, pointer, null);
      }
      if (file.lfs && m[2] === 'resolve') {
        res.setHeader('X-Linked-Size', String(file.bytes.byteLength));
        res.setHeader('X-Linked-ETag', `"${file.sha256}"`);
        res.setHeader('ETag', `"${file.sha256}"`);
        const where = `repo=${encodeURIComponent(repo.id)}&path=${encodeURIComponent(m[4])}`;
        if ((repo.options.storage ?? 'xet') === 'xet') {
          // As the Hub: a signed Xet-bridge URL (no Authorization needed, nor accepted).
          const hash = xetHashOf(file);
          res.setHeader('X-Xet-Hash', hash);
          const signed = `Expires=${Math.floor(Date.now() / 1000) + 3600}&Signature=fake-${hash.slice(0, 16)}&Key-Pair-Id=FAKE`;
          res.setHeader('Location', `${this.cdnUrl}/xet-bridge-us/${createHash('sha1').update(repo.id).digest('hex').slice(0, 24)}/${hash}?${where}&${signed}`);
        } else {
          res.setHeader('Location', `${this.cdnUrl}/lfs/${file.sha256}?${where}`);
        }
        return this.send(record, res, 302);
      }
      res.setHeader('ETag', `"${file.gitOid}"`);
      return this.sendBytes(record, req.method === 'HEAD', res, this.served(repo.id, m[4], file.bytes), record.range);
    }

    return this.error(record, res, 404, 'NotFound', `fake hub: no route for ${record.method} ${path}`);
  }

  /**
   * The download origin (LFS CDN and Xet bridge) as strict as the real one where browsers notice:
   * it answers no CORS preflight and serves only CORS-simple requests (GET, no `Authorization`,
   * no custom header, `Range` only as one `bytes=N-M` or `bytes=N-`). A refused request gets no
   * CORS headers, so a browser reports it as a network error, as it would against the real CDN.
   */
  /**
   * The consent page, already agreed to: redirects back to `redirect_uri` with a code bound to the
   * PKCE challenge, like the Hub after "Authorize". Only S256 and the known client are accepted.
   */
  private oauthAuthorize(record: RequestRecord, url: URL, res: ServerResponse): void {
    const q = url.searchParams;
    const redirectUri = q.get('redirect_uri') ?? '';
    if (q.get('client_id') !== OAUTH_CLIENT_ID) return this.send(record, res, 400, `fake hub: unknown client_id ${q.get('client_id') ?? ''}`);
    if (q.get('response_type') !== 'code' || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge') || !/^https?:\/\//.test(redirectUri)) {
      return this.send(record, res, 400, 'fake hub: bad authorization request');
    }
    const code = randomBytes(12).toString('hex');
    this.oauthCodes.set(code, { codeChallenge: q.get('code_challenge')!, redirectUri, scope: q.get('scope') ?? 'openid profile' });
    const back = new URL(redirectUri);
    back.searchParams.set('code', code);
    back.searchParams.set('state', q.get('state') ?? '');
    res.setHeader('Location', back.href);
    return this.send(record, res, 302);
  }

  /** Exchanges a code for a token after checking the PKCE verifier and the redirect URI. */
  private oauthToken(record: RequestRecord, res: ServerResponse, body: Uint8Array): void {
    const form = new URLSearchParams(new TextDecoder().decode(body));
    const code = form.get('code') ?? '';
    const issued = this.oauthCodes.get(code);
    this.oauthCodes.delete(code);
    const challenge = createHash('sha256').update(form.get('code_verifier') ?? '').digest('base64url');
    if (form.get('grant_type') !== 'authorization_code' || !issued || issued.codeChallenge !== challenge || issued.redirectUri !== form.get('redirect_uri')) {
      return this.json(record, res, 400, { error: 'invalid_grant' });
    }
    const accessToken = `hf_oauth_${randomBytes(16).toString('hex')}`;
    const scopes = issued.scope.split(/\s+/).filter(Boolean);
    this.tokens.set(accessToken, { user: FAKE_USER, role: 'fineGrained', orgs: ['alloy-org'], scopes });
    this.oauthTokens.push(accessToken);
    return this.json(record, res, 200, { access_token: accessToken, token_type: 'bearer', expires_in: 28_800, scope: scopes.join(' '), id_token: 'fake.id.token' });
  }

  private async handleStrictCdn(record: RequestRecord, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const refusal = cdnRefusal(record, req);
      if (refusal) {
        record.refused = refusal;
        return this.send(record, res, record.method === 'OPTIONS' ? 403 : 400, `fake CDN: refused ${refusal}`);
      }
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Access-Control-Expose-Headers', EXPOSED);
      if (this.faults.delayMs) await new Promise((r) => setTimeout(r, this.faults.delayMs));
      let m: RegExpExecArray | null;
      let stored: Uint8Array | undefined;
      let etag: string;
      if ((m = /^\/lfs\/([0-9a-f]{64})$/.exec(record.path))) {
        const oid = m[1];
        const repo = this.repos.get(url.searchParams.get('repo') ?? '');
        stored = repo?.commits.flatMap((c) => [...c.files.values()]).find((f) => f.sha256 === oid)?.bytes ?? this.lfsObjects.get(oid);
        etag = oid;
      } else if ((m = /^\/xet-bridge-us\/[0-9a-f]+\/([0-9a-f]{64})$/.exec(record.path))) {
        const hash = m[1];
        const repo = this.repos.get(url.searchParams.get('repo') ?? '');
        stored = repo?.commits.flatMap((c) => [...c.files.values()]).find((f) => xetHashOf(f) === hash)?.bytes;
        etag = hash;
        if (!url.searchParams.get('Signature')) return this.send(record, res, 403, 'fake CDN: unsigned URL');
      } else {
        return this.send(record, res, 404);
      }
      if (!stored) return this.send(record, res, 404);
      const repoId = url.searchParams.get('repo') ?? '';
      const path = url.searchParams.get('path') ?? '';
      const bytes = this.served(repoId, path, stored);
      record.file = { repo: repoId, path };
      res.setHeader('ETag', `"${etag}"`);
      if (this.faults.hold?.(record)) {
        record.fault = 'hold';
        this.held.add(res);
        res.once('close', () => this.held.delete(res));
        return;
      }
      if (record.range !== null) {
        const n = ++this.rangeCount;
        const fault = this.faults.rangeFault?.(n, record);
        if (fault === 'fail') {
          record.fault = 'fail';
          return this.send(record, res, 503, 'fake hub: injected failure');
        }
        if (fault === 'abort') {
          record.fault = 'abort';
          return this.sendBytes(record, false, res, bytes, record.range, true);
        }
      }
      return await this.sendBytes(record, false, res, bytes, record.range);
    } catch (error) {
      if (!res.headersSent) this.send(record, res, 500, `fake CDN: ${(error as Error).message}`);
      else res.destroy();
    }
  }

  /** Upload storage (S3-like): answers preflights, takes PUTs of LFS objects and parts. */
  private async handleStorage(record: RequestRecord, res: ServerResponse, body: Uint8Array): Promise<void> {
    let m: RegExpExecArray | null;
    if ((m = /^\/lfs-upload\/([0-9a-f]{64})$/.exec(record.path)) && record.method === 'PUT') {
      if (sha256(body) !== m[1]) return this.send(record, res, 400, 'sha256 mismatch');
      this.lfsObjects.set(m[1], body);
      return this.send(record, res, 200);
    }
    if ((m = /^\/lfs-upload\/([0-9a-f]{64})\/part\/(\d+)$/.exec(record.path)) && record.method === 'PUT') {
      let parts = this.multipartParts.get(m[1]);
      if (!parts) this.multipartParts.set(m[1], (parts = new Map()));
      parts.set(Number(m[2]), body);
      res.setHeader('ETag', `"${createHash('md5').update(body).digest('hex')}"`);
      return this.send(record, res, 200);
    }
    if ((m = /^\/lfs-upload\/([0-9a-f]{64})\/complete$/.exec(record.path)) && record.method === 'POST') {
      const payload = JSON.parse(new TextDecoder().decode(body)) as { oid: string; parts: { partNumber: number; etag: string }[] };
      const parts = this.multipartParts.get(m[1]);
      if (!parts || payload.parts.some((p) => !parts.has(p.partNumber) || !p.etag)) return this.send(record, res, 400, 'missing parts or etags');
      const total = payload.parts.reduce((s, p) => s + parts.get(p.partNumber)!.byteLength, 0);
      const joined = new Uint8Array(total);
      let at = 0;
      for (const p of [...payload.parts].sort((a, b) => a.partNumber - b.partNumber)) {
        joined.set(parts.get(p.partNumber)!, at);
        at += parts.get(p.partNumber)!.byteLength;
      }
      if (sha256(joined) !== m[1]) return this.send(record, res, 400, 'sha256 mismatch');
      this.lfsObjects.set(m[1], joined);
      this.multipartParts.delete(m[1]);
      return this.json(record, res, 200, {});
    }
    return this.send(record, res, 404);
  }

  private commit(record: RequestRecord, res: ServerResponse, repo: Repo, branch: string, body: Uint8Array): void {
    const lines = new TextDecoder().decode(body).split('\n').filter((l) => l.trim() !== '');
    const parent = this.findCommit(repo, branch);
    if (!parent) return this.error(record, res, 404, 'RevisionNotFound', `Invalid rev id: ${branch}`);
    const files = new Map(parent.files);
    const added = new Map<string, Uint8Array>();
    const lfsFiles: string[] = [];
    const deleted: string[] = [];
    let summary = '';
    for (const line of lines) {
      const op = JSON.parse(line) as { key: string; value: Record<string, unknown> };
      if (op.key === 'header') summary = String(op.value.summary ?? '');
      else if (op.key === 'file') {
        const bytes = new Uint8Array(Buffer.from(String(op.value.content), 'base64'));
        const path = String(op.value.path);
        files.set(path, { bytes, lfs: false, sha256: sha256(bytes), gitOid: gitOid(bytes) });
        added.set(path, bytes);
      } else if (op.key === 'lfsFile') {
        const oid = String(op.value.oid);
        const bytes = this.lfsObjects.get(oid);
        if (!bytes) return this.json(record, res, 422, { error: `LFS object ${oid} was not uploaded` });
        const path = String(op.value.path);
        files.set(path, { bytes, lfs: true, sha256: oid, gitOid: gitOid(bytes) });
        added.set(path, bytes);
        lfsFiles.push(path);
      } else if (op.key === 'deletedFile') {
        files.delete(String(op.value.path));
        deleted.push(String(op.value.path));
      }
    }
    const oid = newCommitOid();
    repo.commits.push({ oid, files });
    repo.branches.set(branch, oid);
    repo.lastModified = new Date().toISOString();
    this.commits.push({ repo: repo.id, oid, summary, files: added, lfsFiles, deleted });
    return this.json(record, res, 200, { commitOid: oid, commitUrl: `${this.url}/${repo.id}/commit/${oid}`, success: true });
  }

  private readableRepo(record: RequestRecord, res: ServerResponse, id: string, token: TokenInfo | null): Repo | null {
    const repo = this.repos.get(id);
    if (!repo) {
      this.error(record, res, 404, 'RepoNotFound', 'Repository not found');
      return null;
    }
    if (repo.options.private && (!token || token.user !== repo.options.owner)) {
      // Like the Hub: a private repo looks missing, with 401 when no token was sent.
      this.error(record, res, token ? 404 : 401, 'RepoNotFound', 'Repository not found');
      return null;
    }
    return repo;
  }

  private writableRepo(record: RequestRecord, res: ServerResponse, id: string, token: TokenInfo | null): Repo | null {
    if (!token) {
      this.error(record, res, 401, 'RepoNotFound', 'Repository not found');
      return null;
    }
    const repo = this.readableRepo(record, res, id, token);
    if (!repo) return null;
    const namespace = repo.options.owner ?? id.split('/')[0];
    if (token.role === 'read' || (token.scopes && !token.scopes.includes('write-repos')) || (namespace !== token.user && !(token.orgs ?? []).includes(namespace))) {
      this.error(record, res, 403, 'Forbidden', 'You have read access but not the required permissions for this operation.');
      return null;
    }
    return repo;
  }

  private modelJson(repo: Repo, commitOid: string): Record<string, unknown> {
    const commit = repo.commits.find((c) => c.oid === commitOid)!;
    return {
      _id: `id-${repo.id}`,
      id: repo.id,
      modelId: repo.id,
      sha: commitOid,
      private: repo.options.private ?? false,
      gated: repo.options.gated ? 'manual' : false,
      downloads: repo.options.downloads ?? 0,
      likes: repo.options.likes ?? 0,
      lastModified: repo.lastModified,
      pipeline_tag: 'text-generation',
      siblings: [...commit.files.keys()].map((rfilename) => ({ rfilename })),
    };
  }

  /** The bytes sent for a file: the stored ones, or altered ones under the `tamper` fault. */
  private served(repo: string, path: string, bytes: Uint8Array): Uint8Array {
    if (!this.faults.tamper?.(repo, path) || bytes.byteLength === 0) return bytes;
    const altered = bytes.slice();
    altered[altered.byteLength - 1] ^= 0x01;
    return altered;
  }

  private fileEntry(path: string, file: StoredFile, repo: Repo): Record<string, unknown> {
    const xet = file.lfs && (repo.options.storage ?? 'xet') === 'xet';
    return {
      type: 'file',
      // As the Hub: an LFS file's git object is its pointer, so `oid` is the pointer's blob id.
      oid: file.lfs ? gitOid(lfsPointer(file)) : file.gitOid,
      size: file.bytes.byteLength,
      path,
      ...(file.lfs ? { lfs: { oid: file.sha256, size: file.bytes.byteLength, pointerSize: 134 } } : {}),
      ...(xet ? { xetHash: xetHashOf(file) } : {}),
    };
  }

  private treeEntries(repo: Repo, files: Map<string, StoredFile>, prefix: string, recursive: boolean): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    const dirs = new Set<string>();
    for (const [path, file] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (!path.startsWith(prefix)) continue;
      const rest = path.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash >= 0) {
        const dir = prefix + rest.slice(0, slash);
        if (!dirs.has(dir)) {
          dirs.add(dir);
          out.push({ type: 'directory', oid: gitOid(new TextEncoder().encode(dir)), size: 0, path: dir });
        }
        if (!recursive) continue;
      }
      out.push(this.fileEntry(path, file, repo));
    }
    return out;
  }

  private error(record: RequestRecord, res: ServerResponse, status: number, code: string, message: string): void {
    res.setHeader('X-Error-Code', code);
    res.setHeader('X-Error-Message', message);
    this.json(record, res, status, { error: message });
  }

  private json(record: RequestRecord, res: ServerResponse, status: number, value: unknown, type = 'application/json'): void {
    const bytes = new TextEncoder().encode(JSON.stringify(value));
    res.setHeader('Content-Type', `${type}; charset=utf-8`);
    res.setHeader('Content-Length', String(bytes.byteLength));
    record.status = status;
    res.writeHead(status);
    res.end(bytes);
    record.bytesSent = bytes.byteLength;
  }

  private send(record: RequestRecord, res: ServerResponse, status: number, text?: string): void {
    record.status = status;
    if (text !== undefined) {
      const bytes = new TextEncoder().encode(text);
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.setHeader('Content-Length', String(bytes.byteLength));
      res.writeHead(status);
      res.end(bytes);
      record.bytesSent = bytes.byteLength;
      return;
    }
    res.setHeader('Content-Length', '0');
    res.writeHead(status);
    res.end();
  }

  /** Serves bytes, honouring a single `bytes=a-b` range; `abort` cuts the body in the middle. */
  private async sendBytes(record: RequestRecord, head: boolean, res: ServerResponse, bytes: Uint8Array, range: string | null, abort = false): Promise<void> {
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Type', 'application/octet-stream');
    let start = 0;
    let end = bytes.byteLength; // exclusive
    let status = 200;
    if (range !== null) {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
      if (!m || (m[1] === '' && m[2] === '')) {
        res.setHeader('Content-Range', `bytes */${bytes.byteLength}`);
        return this.send(record, res, 416);
      }
      if (m[1] === '') {
        start = Math.max(0, bytes.byteLength - Number(m[2]));
      } else {
        start = Number(m[1]);
        end = m[2] === '' ? bytes.byteLength : Math.min(bytes.byteLength, Number(m[2]) + 1);
      }
      if (start >= bytes.byteLength || start >= end) {
        res.setHeader('Content-Range', `bytes */${bytes.byteLength}`);
        return this.send(record, res, 416);
      }
      status = 206;
      res.setHeader('Content-Range', `bytes ${start}-${end - 1}/${bytes.byteLength}`);
    }
    const body = bytes.subarray(start, end);
    res.setHeader('Content-Length', String(body.byteLength));
    record.status = status;
    res.writeHead(status);
    if (head) {
      res.end();
      return;
    }
    const rate = this.faults.bytesPerSecond;
    if (!rate && !abort) {
      res.end(body);
      record.bytesSent = body.byteLength;
      return;
    }
    const piece = rate ? Math.max(1024, Math.floor(rate / 20)) : Math.ceil(body.byteLength / 4);
    const stopAt = abort ? Math.floor(body.byteLength / 2) : body.byteLength;
    for (let at = 0; at < stopAt; at += piece) {
      if (res.destroyed) return;
      const chunk = body.subarray(at, Math.min(stopAt, at + piece));
      res.write(chunk);
      record.bytesSent += chunk.byteLength;
      if (rate) await new Promise((r) => setTimeout(r, (chunk.byteLength / rate) * 1000));
    }
    if (abort) {
      await new Promise((r) => setTimeout(r, 20));
      res.destroy();
      return;
    }
    res.end();
  }
}

/** The key of a repo in the fake's store: `owner/name` for models, `spaces/owner/name` for Spaces. */
function repoKey(type: string, name: string): string {
  return type === 'spaces' ? `spaces/${name}` : name;
}

function storedText(text: string): StoredFile {
  const bytes = new TextEncoder().encode(text);
  return { bytes, lfs: false, sha256: sha256(bytes), gitOid: gitOid(bytes) };
}

function readBody(req: IncomingMessage): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

/** Why the strict CDN refuses a request (what would need a CORS preflight), or undefined. */
function cdnRefusal(record: RequestRecord, req: IncomingMessage): string | undefined {
  if (record.method === 'OPTIONS') return 'a CORS preflight (the CDN answers none)';
  if (record.method !== 'GET') return `a ${record.method} request (downloads from the CDN are plain GETs)`;
  if (record.authorization !== null) return 'an Authorization header (the URL is signed; browsers drop it on a cross-origin redirect)';
  if (record.range !== null) {
    const m = SIMPLE_RANGE.exec(record.range);
    if (!m || (m[2] !== '' && Number(m[2]) < Number(m[1]))) {
      return `the range "${record.range.slice(0, 60)}" (only one bytes=N-M or bytes=N- is CORS-safelisted)`;
    }
  }
  const custom = Object.keys(req.headers).filter((h) => h.startsWith('x-'));
  if (custom.length > 0) return `the custom header ${custom.join(', ')}`;
  const type = req.headers['content-type'];
  if (type !== undefined) return `a Content-Type header on a GET`;
  return undefined;
}
