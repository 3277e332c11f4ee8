import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An in-memory server speaking the B2 native API v2 calls the backblaze-b2 client makes for our driver
 * (no B2 emulator exists). It checks what real B2 checks that matters here: auth tokens, Content-Length,
 * SHA-1 of bodies and parts, part order. Counters and fault switches let tests see and provoke behaviour.
 */

export type FakeB2Op =
  | 'authorize' | 'list_buckets' | 'get_upload_url' | 'upload_file' | 'start_large_file' | 'get_upload_part_url'
  | 'upload_part' | 'finish_large_file' | 'cancel_large_file' | 'list_file_names' | 'download';

export interface FakeB2Options {
  keyId?: string;
  appKey?: string;
  bucket?: string;
  /** Real B2 says 5,000,000; parts below it (but the last) make b2_finish_large_file fail. */
  absoluteMinimumPartSize?: number;
}

interface StoredFile {
  fileId: string;
  fileName: string;
  buffer: Buffer;
  /** "none" for files assembled from parts, as in B2. */
  contentSha1: string;
  contentType: string;
  fileInfo: Record<string, string>;
  uploadTimestamp: number;
}

interface LargeFile {
  fileId: string;
  fileName: string;
  contentType: string;
  fileInfo: Record<string, string>;
  parts: Map<number, { buffer: Buffer; sha1: string }>;
}

class B2Failure {
  constructor(readonly status: number, readonly code: string, readonly message: string) {}
}

const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex');
const API = '/b2api/v2/';

export class FakeB2Server {
  readonly keyId: string;
  readonly appKey: string;
  readonly bucketName: string;
  readonly bucketId = 'b2bucket000001';
  readonly accountId = 'acct000001';
  readonly minPartSize: number;
  url = '';
  readonly files = new Map<string, StoredFile>();
  readonly largeFiles = new Map<string, LargeFile>();
  /** Requests per operation, counted even when they fail. */
  readonly calls = new Map<FakeB2Op, number>();
  readonly uploadsByKey = new Map<string, number>();
  readonly downloadsByKey = new Map<string, number>();
  /** The largest request body received, in bytes: an upload sent in parts never exceeds one part. */
  largestBody = 0;
  /** Called after a request for the op succeeded (before the response is sent). */
  readonly after = new Map<FakeB2Op, () => void>();

  private readonly server = http.createServer((req, res) => void this.handle(req, res));
  private readonly validTokens = new Set<string>();
  private readonly expiredTokens = new Set<string>();
  private readonly uploadTokens = new Map<string, { kind: 'file' | 'part'; id: string }>();
  private readonly faults: { op: FakeB2Op | '*'; skip: number; remaining: number; status: number; code: string }[] = [];
  private wrongSha1Downloads = 0;
  private stall?: () => void;
  private seq = 0;

  private constructor(options: FakeB2Options) {
    this.keyId = options.keyId ?? '0012345abcdef0000000001';
    this.appKey = options.appKey ?? 'K001SecretAppKeyForTestsOnly0000';
    this.bucketName = options.bucket ?? 'avatar-test';
    this.minPartSize = options.absoluteMinimumPartSize ?? 5 * 1024 * 1024;
  }

  static async start(options: FakeB2Options = {}): Promise<FakeB2Server> {
    const fake = new FakeB2Server(options);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    return fake;
  }

  get authUrl(): string {
    return `${this.url}${API}b2_authorize_account`;
  }

  count(op: FakeB2Op): number {
    return this.calls.get(op) ?? 0;
  }

  /** After `skip` more requests for `op` ('*': any), the next `count` fail with this status and B2 code. */
  failNext(op: FakeB2Op | '*', count = 1, status = 503, code = 'service_unavailable', skip = 0): void {
    this.faults.push({ op, skip, remaining: count, status, code });
  }

  /** Every account token handed out so far now answers 401 expired_auth_token. */
  expireAuthTokens(): void {
    for (const t of this.validTokens) this.expiredTokens.add(t);
    this.validTokens.clear();
  }

  /** The next download announces a SHA-1 that does not match its bytes. */
  corruptNextDownload(): void {
    this.wrongSha1Downloads++;
  }

  /** The next download sends its headers and half its body, then hangs; resolves once it hangs. */
  stallNextDownload(): Promise<void> {
    return new Promise((resolve) => {
      this.stall = resolve;
    });
  }

  /** Seeds an object directly, as if uploaded earlier. */
  put(fileName: string, content: Buffer | string, fileInfo: Record<string, string> = {}): void {
    const buffer = Buffer.from(content);
    const fileId = this.nextId('f');
    this.files.set(fileName, { fileId, fileName, buffer, contentSha1: sha1(buffer), contentType: 'application/octet-stream', fileInfo, uploadTimestamp: Date.now() });
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    let op: FakeB2Op | undefined;
    try {
      const body = await readBody(req);
      this.largestBody = Math.max(this.largestBody, body.length);
      op = routeOf(req.method ?? 'GET', url.pathname);
      if (!op) throw new B2Failure(404, 'not_found', `no such API: ${url.pathname}`);
      this.calls.set(op, this.count(op) + 1);
      const fault = this.faults.find((f) => (f.op === op || f.op === '*') && f.remaining > 0);
      if (fault && fault.skip > 0) fault.skip--;
      else if (fault) {
        fault.remaining--;
        throw new B2Failure(fault.status, fault.code, 'injected failure');
      }
      if (op === 'download') return this.download(req, res, url);
      const result = this.dispatch(op, req, body);
      this.after.get(op)?.();
      send(res, 200, result);
    } catch (err) {
      if (res.headersSent) return void res.destroy();
      if (err instanceof B2Failure) send(res, err.status, { status: err.status, code: err.code, message: err.message });
      else send(res, 500, { status: 500, code: 'internal_error', message: String(err) });
    }
  }

  private dispatch(op: FakeB2Op, req: http.IncomingMessage, body: Buffer): unknown {
    if (op === 'authorize') return this.authorize(req);
    if (op === 'upload_file') return this.uploadFile(req, body);
    if (op === 'upload_part') return this.uploadPart(req, body);
    this.requireAccountToken(req);
    const json = parseJson(body);
    switch (op) {
      case 'list_buckets': {
        if (json['accountId'] !== this.accountId) throw new B2Failure(400, 'bad_request', 'accountId invalid');
        const wanted = json['bucketName'];
        const all = [{ accountId: this.accountId, bucketId: this.bucketId, bucketName: this.bucketName, bucketType: 'allPrivate' }];
        return { buckets: all.filter((b) => wanted === undefined || b.bucketName === wanted) };
      }
      case 'get_upload_url': {
        this.requireBucket(json['bucketId']);
        const token = this.nextId('upload-token');
        this.uploadTokens.set(token, { kind: 'file', id: this.bucketId });
        return { bucketId: this.bucketId, uploadUrl: `${this.url}${API}b2_upload_file/${this.bucketId}/${this.seq}`, authorizationToken: token };
      }
      case 'start_large_file': {
        this.requireBucket(json['bucketId']);
        const fileName = String(json['fileName'] ?? '');
        if (!fileName) throw new B2Failure(400, 'bad_request', 'fileName is required');
        const large: LargeFile = {
          fileId: this.nextId('large'), fileName, contentType: autoType(json['contentType']),
          fileInfo: (json['fileInfo'] as Record<string, string> | undefined) ?? {}, parts: new Map(),
        };
        this.largeFiles.set(large.fileId, large);
        const { fileId, contentType, fileInfo } = large;
        return { accountId: this.accountId, action: 'start', bucketId: this.bucketId, contentLength: 0, contentSha1: 'none', contentType, fileId, fileInfo, fileName };
      }
      case 'get_upload_part_url': {
        const large = this.requireLarge(json['fileId']);
        const token = this.nextId('part-token');
        this.uploadTokens.set(token, { kind: 'part', id: large.fileId });
        return { fileId: large.fileId, uploadUrl: `${this.url}${API}b2_upload_part/${large.fileId}/${this.seq}`, authorizationToken: token };
      }
      case 'finish_large_file':
        return this.finishLarge(json);
      case 'cancel_large_file': {
        const large = this.requireLarge(json['fileId']);
        this.largeFiles.delete(large.fileId);
        return { fileId: large.fileId, accountId: this.accountId, bucketId: this.bucketId, fileName: large.fileName };
      }
      case 'list_file_names':
        return this.listFileNames(json);
      default:
        throw new B2Failure(400, 'bad_request', `unsupported ${op}`);
    }
  }

  private authorize(req: http.IncomingMessage): unknown {
    const expected = 'Basic ' + Buffer.from(`${this.keyId}:${this.appKey}`).toString('base64');
    if (req.headers.authorization !== expected) throw new B2Failure(401, 'unauthorized', 'invalid application key id or key');
    const token = this.nextId('acct-token');
    this.validTokens.add(token);
    return {
      accountId: this.accountId, authorizationToken: token, apiUrl: this.url, downloadUrl: this.url, s3ApiUrl: this.url,
      recommendedPartSize: 100 * 1000 * 1000, absoluteMinimumPartSize: this.minPartSize,
      allowed: { bucketId: null, bucketName: null, namePrefix: null, capabilities: ['listBuckets', 'listFiles', 'readFiles', 'writeFiles'] },
    };
  }

  private uploadFile(req: http.IncomingMessage, body: Buffer): unknown {
    this.requireUploadToken(req, 'file');
    const fileName = decodeName(header(req, 'x-bz-file-name'));
    checkBody(req, body);
    const file: StoredFile = {
      fileId: this.nextId('f'), fileName, buffer: body, contentSha1: sha1(body), contentType: autoType(req.headers['content-type']),
      fileInfo: infoHeaders(req), uploadTimestamp: Date.now(),
    };
    this.files.set(fileName, file);
    this.uploadsByKey.set(fileName, (this.uploadsByKey.get(fileName) ?? 0) + 1);
    return this.describe(file);
  }

  private uploadPart(req: http.IncomingMessage, body: Buffer): unknown {
    const fileId = this.requireUploadToken(req, 'part');
    const large = this.requireLarge(fileId);
    const partNumber = Number(header(req, 'x-bz-part-number'));
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10000) throw new B2Failure(400, 'bad_request', 'bad part number');
    checkBody(req, body);
    large.parts.set(partNumber, { buffer: body, sha1: sha1(body) });
    return { fileId, partNumber, contentLength: body.length, contentSha1: sha1(body), uploadTimestamp: Date.now() };
  }

  private finishLarge(json: Record<string, unknown>): unknown {
    const large = this.requireLarge(json['fileId']);
    const shas = json['partSha1Array'];
    if (!Array.isArray(shas) || shas.length !== large.parts.size) throw new B2Failure(400, 'bad_request', 'partSha1Array does not list every part');
    if (shas.length < 2) throw new B2Failure(400, 'bad_request', 'large files must have at least 2 parts');
    const buffers: Buffer[] = [];
    shas.forEach((expected, i) => {
      const part = large.parts.get(i + 1);
      if (!part) throw new B2Failure(400, 'bad_request', `part ${i + 1} is missing`);
      if (part.sha1 !== expected) throw new B2Failure(400, 'bad_request', `part ${i + 1} SHA-1 does not match`);
      if (i < shas.length - 1 && part.buffer.length < this.minPartSize) throw new B2Failure(400, 'bad_request', `part ${i + 1} is too small`);
      buffers.push(part.buffer);
    });
    const file: StoredFile = {
      fileId: large.fileId, fileName: large.fileName, buffer: Buffer.concat(buffers), contentSha1: 'none', contentType: large.contentType,
      fileInfo: large.fileInfo, uploadTimestamp: Date.now(),
    };
    this.largeFiles.delete(large.fileId);
    this.files.set(file.fileName, file);
    this.uploadsByKey.set(file.fileName, (this.uploadsByKey.get(file.fileName) ?? 0) + 1);
    return this.describe(file);
  }

  private listFileNames(json: Record<string, unknown>): unknown {
    this.requireBucket(json['bucketId']);
    const prefix = String(json['prefix'] ?? '');
    const start = String(json['startFileName'] ?? '');
    const max = Number(json['maxFileCount'] ?? 100);
    if (!Number.isInteger(max) || max < 1 || max > 10000) throw new B2Failure(400, 'bad_request', 'maxFileCount out of range');
    const names = [...this.files.keys()].filter((n) => n.startsWith(prefix) && n >= start).sort();
    return { files: names.slice(0, max).map((n) => this.describe(this.files.get(n) as StoredFile)), nextFileName: names[max] ?? null };
  }

  private download(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    this.requireAccountToken(req);
    const rest = url.pathname.slice('/file/'.length);
    const slash = rest.indexOf('/');
    const bucket = rest.slice(0, slash);
    const fileName = rest.slice(slash + 1).split('/').map(decodeURIComponent).join('/');
    if (bucket !== this.bucketName) throw new B2Failure(404, 'not_found', `bucket ${bucket} does not exist`);
    const file = this.files.get(fileName);
    if (!file) throw new B2Failure(404, 'not_found', `file not present: ${fileName}`);
    this.downloadsByKey.set(fileName, (this.downloadsByKey.get(fileName) ?? 0) + 1);
    const headers: Record<string, string | number> = {
      'Content-Length': file.buffer.length, 'Content-Type': file.contentType, 'X-Bz-File-Id': file.fileId,
      'X-Bz-File-Name': encodeURIComponent(file.fileName), 'X-Bz-Content-Sha1': file.contentSha1,
      'X-Bz-Upload-Timestamp': file.uploadTimestamp,
    };
    for (const [k, v] of Object.entries(file.fileInfo)) headers[`X-Bz-Info-${k}`] = encodeURIComponent(v);
    if (this.wrongSha1Downloads > 0) {
      this.wrongSha1Downloads--;
      const wrong = sha1(Buffer.from('not the content'));
      if (file.contentSha1 === 'none') headers['X-Bz-Info-large_file_sha1'] = wrong;
      else headers['X-Bz-Content-Sha1'] = wrong;
    }
    res.writeHead(200, headers);
    const stall = this.stall;
    if (stall) {
      this.stall = undefined;
      res.write(file.buffer.subarray(0, Math.floor(file.buffer.length / 2)), () => stall());
      return;
    }
    res.end(file.buffer);
  }

  private describe({ buffer, ...f }: StoredFile): unknown {
    return { ...f, accountId: this.accountId, action: 'upload', bucketId: this.bucketId, contentLength: buffer.length };
  }

  private requireAccountToken(req: http.IncomingMessage): void {
    const token = req.headers.authorization ?? '';
    if (this.validTokens.has(token)) return;
    if (this.expiredTokens.has(token)) throw new B2Failure(401, 'expired_auth_token', 'Authorization token has expired');
    throw new B2Failure(401, 'bad_auth_token', 'Invalid authorization token');
  }

  private requireUploadToken(req: http.IncomingMessage, kind: 'file' | 'part'): string {
    const grant = this.uploadTokens.get(req.headers.authorization ?? '');
    if (!grant || grant.kind !== kind) throw new B2Failure(401, 'bad_auth_token', 'Invalid upload authorization token');
    return grant.id;
  }

  private requireBucket(bucketId: unknown): void {
    if (bucketId !== this.bucketId) throw new B2Failure(400, 'bad_request', `Invalid bucketId: ${String(bucketId)}`);
  }

  private requireLarge(fileId: unknown): LargeFile {
    const large = this.largeFiles.get(String(fileId));
    if (!large) throw new B2Failure(400, 'bad_request', `No active large file: ${String(fileId)}`);
    return large;
  }

  private nextId(kind: string): string {
    this.seq++;
    return `${kind}-${this.seq}-${randomBytes(4).toString('hex')}`;
  }
}

function routeOf(method: string, pathname: string): FakeB2Op | undefined {
  if (method === 'GET' && pathname.startsWith('/file/')) return 'download';
  if (!pathname.startsWith(API)) return undefined;
  const name = pathname.slice(API.length).split('/')[0] ?? '';
  if (name === 'b2_authorize_account') return 'authorize';
  if (method !== 'POST') return undefined;
  const ops: Record<string, FakeB2Op> = {
    b2_list_buckets: 'list_buckets', b2_get_upload_url: 'get_upload_url', b2_upload_file: 'upload_file',
    b2_start_large_file: 'start_large_file', b2_get_upload_part_url: 'get_upload_part_url', b2_upload_part: 'upload_part',
    b2_finish_large_file: 'finish_large_file', b2_cancel_large_file: 'cancel_large_file', b2_list_file_names: 'list_file_names',
  };
  return ops[name];
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return Buffer.concat(await req.toArray());
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function parseJson(body: Buffer): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(body.toString('utf8') || '{}');
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // falls through to the 400 below
  }
  throw new B2Failure(400, 'bad_request', 'request body is not a JSON object');
}

function header(req: http.IncomingMessage, name: string): string {
  const value = req.headers[name];
  if (typeof value !== 'string' || !value) throw new B2Failure(400, 'bad_request', `missing header ${name}`);
  return value;
}

function decodeName(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    throw new B2Failure(400, 'bad_request', 'file name is not URL-encoded UTF-8');
  }
}

/** Content-Length must be given and true, and the body must hash to X-Bz-Content-Sha1. */
function checkBody(req: http.IncomingMessage, body: Buffer): void {
  const length = Number(header(req, 'content-length'));
  if (length !== body.length) throw new B2Failure(400, 'bad_request', `Content-Length ${length} but ${body.length} bytes received`);
  if (header(req, 'x-bz-content-sha1').toLowerCase() !== sha1(body)) throw new B2Failure(400, 'bad_request', 'Checksum did not match data received');
}

function infoHeaders(req: http.IncomingMessage): Record<string, string> {
  const info: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (k.startsWith('x-bz-info-') && typeof v === 'string') info[k.slice('x-bz-info-'.length)] = decodeURIComponent(v);
  }
  return info;
}

function autoType(value: unknown): string {
  return typeof value === 'string' && value && value !== 'b2/x-auto' ? value : 'application/octet-stream';
}
