/**
 * Turns an endpoint's valid request into a hostile one: one thing changed (a field, the whole body,
 * the path id, the query, the credentials, the content type) or the HTTP itself malformed. Each
 * request says which field, parameter or header a 400 about it must name (`blame`).
 */
import type { Endpoint, ValidRequest } from './fuzz-endpoints';
import {
  INVALID_UTF8, KEYS, NUMBERS, allPaths, asText, clone, deep, encodeJson, getAt, hostileValue, pathName, setAt, type Path, type Rng,
} from './fuzz-values';

export interface Keys {
  product: string;
  /** A second product key, of another owner. */
  other: string;
  operator: string;
  /** The enrolment key (INTERNAL_API_KEY). */
  internal: string;
  /** Other workers' tokens (current, stale, revoked); filled in as fixtures are made. */
  tokens: readonly string[];
}

export interface FuzzRequest {
  /** What was changed, for reports. */
  what: string;
  method: string;
  /** Already encoded; may hold raw latin1 bytes on purpose. */
  path: string;
  headers: Record<string, string | string[]>;
  body?: Buffer;
  /** Send exactly these bytes on a fresh connection instead (malformed HTTP). */
  raw?: Buffer;
  /** What a 400 must name: fields (dotted), `(body)`, or a parameter; empty means any named field will do. */
  blame: string[];
}

interface Draft {
  what: string;
  param?: string;
  body?: unknown;
  /** Bytes to send instead of the encoded body. */
  bytes?: Buffer;
  query?: string;
  headers?: Record<string, string | string[]>;
  /** Write the request by hand, malformed (see malformedHttp). */
  malformed?: boolean;
  blame: string[];
}

const ENCODED_IDS = ['', '%zz', '%', '%00', '..', '%2e%2e', '%2F', 'a/b', '\xff\xfe', '%E0%A4%A', `${'a'.repeat(300)}`, '%20', '*', '?x=1'];

/** A well-formed UUID that names nothing, from the seeded source (so runs repeat). */
function randomUuid(rng: Rng): string {
  const hex = Array.from({ length: 32 }, () => rng.int(16).toString(16)).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20)}`;
}

/** Percent-encodes the UTF-8 bytes of `text`; unlike encodeURIComponent it accepts lone surrogates. */
function encode(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((b) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`)).join('');
}

function queryString(query: Record<string, string> | undefined): string {
  return query ? new URLSearchParams(query).toString() : '';
}

/** The key a valid request of the endpoint sends; null for none. */
function ownKey(ep: Endpoint, valid: ValidRequest, keys: Keys): string | null {
  switch (ep.auth) {
    case 'none': return null;
    case 'product': return keys.product;
    case 'operator': return keys.operator;
    case 'enrolment': return keys.internal;
    case 'worker': return valid.key ?? keys.internal;
  }
}

function authHeaders(key: string | null): Record<string, string> {
  return key === null ? {} : { authorization: `Bearer ${key}` };
}

/** The valid body changed in one place: a value replaced or removed, or a key added. */
function mutateField(rng: Rng, ep: Endpoint, body: unknown, related: readonly string[], limit: number): Draft {
  const copy = clone(body);
  const paths = allPaths(copy);
  const op = paths.length ? rng.int(10) : 9;
  if (op < 6 || (op < 8 && !paths.some((p) => !ep.keep?.includes(pathName(p))))) {
    const path = rng.pick(paths);
    const value = hostileValue(rng, getAt(copy, path), related, limit);
    setAt(copy, path, value);
    return { what: `replace ${pathName(path)}`, body: copy, blame: blameFor(ep, path) };
  }
  if (op < 8) {
    const path = rng.pick(paths.filter((p) => !ep.keep?.includes(pathName(p))));
    setAt(copy, path, undefined, true);
    return { what: `delete ${pathName(path)}`, body: copy, blame: blameFor(ep, path) };
  }
  const containers: Path[] = [[], ...paths.filter((p) => { const v = getAt(copy, p); return v !== null && typeof v === 'object' && !Array.isArray(v); })];
  const at = rng.pick(containers);
  const key = rng.chance(0.8) ? rng.pick(KEYS) : `k${rng.int(1000)}`;
  setAt(copy, [...at, key], hostileValue(rng, null, related, limit));
  return { what: `add key ${JSON.stringify(key.slice(0, 20))} at ${pathName(at)}`, body: copy, blame: blameFor(ep, [...at, key]) };
}

function blameFor(ep: Endpoint, path: Path): string[] {
  const name = pathName(path);
  const top = String(path[0]);
  const also = (key: string) => (ep.related && Object.hasOwn(ep.related, key) ? ep.related[key]! : []);
  // An empty key names no field of its own: its problems are reported against the body.
  return [name, ...also(name), ...also(top), ...(path.includes('') ? ['(body)'] : [])];
}

/** Two to four field changes at once: what a confused client sends. */
function mutateMany(rng: Rng, ep: Endpoint, body: unknown, related: readonly string[], limit: number): Draft {
  let draft = mutateField(rng, ep, body, related, limit);
  const blame = [...draft.blame];
  const what = [draft.what];
  for (let n = 1 + rng.int(3); n > 0 && draft.body !== null && typeof draft.body === 'object'; n--) {
    draft = mutateField(rng, ep, draft.body, related, limit);
    blame.push(...draft.blame);
    what.push(draft.what);
  }
  return { what: what.join(', '), body: draft.body, blame };
}

/** The body as a whole is wrong: not an object, not JSON, not UTF-8, too big, too deep. */
function mutateBody(rng: Rng, body: unknown, limit: number): Draft {
  const text = encodeJson(body ?? {});
  const cases: (() => Draft)[] = [
    () => ({ what: 'body is a JSON scalar or array', body: rng.pick([null, [], [body], 'body', 42, true, '']), blame: ['(body)'] }),
    () => ({ what: 'empty body', bytes: Buffer.alloc(0), blame: ['(body)'] }),
    () => ({ what: 'whitespace body', bytes: Buffer.from(' \n\t '), blame: ['(body)'] }),
    () => ({ what: 'truncated JSON', bytes: text.subarray(0, 1 + rng.int(Math.max(1, text.length - 1))), blame: ['(body)'] }),
    () => ({ what: 'trailing garbage', bytes: Buffer.concat([text, Buffer.from(rng.pick(['x', '{}', ',', '\u0000', ' ]']))]), blame: ['(body)'] }),
    () => ({ what: 'byte order mark', bytes: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), text]), blame: [] }),
    () => ({ what: 'invalid UTF-8 outside strings', bytes: Buffer.concat([text.subarray(0, 1), rng.pick(INVALID_UTF8), text.subarray(1)]), blame: ['(body)'] }),
    () => ({ what: 'UTF-16 body', bytes: Buffer.from(text.toString('utf8'), 'utf16le'), blame: ['(body)'] }),
    () => ({ what: 'duplicate keys', bytes: Buffer.concat([Buffer.from('{"a":1,"a":{},'), text.subarray(1)]), blame: ['a', '(body)'] }),
    () => ({ what: 'deeply nested body', body: deep(rng.pick([100, 10_000, 100_000]), rng.chance(0.5)), blame: ['(body)', 'a'] }),
    () => ({ what: 'body over the limit', body: { ...(body as object), pad: 'x'.repeat(limit + rng.int(1000)) }, blame: ['(body)'] }),
    () => ({ what: 'JSON5 and comments', bytes: Buffer.from(rng.pick(["{'a':1}", '{a:1}', '{"a":1,}', '/* c */{}', '{"a":NaN}', '{"a":0x1}'])), blame: ['(body)'] }),
  ];
  return rng.pick(cases)();
}

function mutateParam(rng: Rng, param: string, related: readonly string[]): Draft {
  const choices: (() => string)[] = [
    () => rng.pick(ENCODED_IDS),
    () => encode(asText(hostileValue(rng, param, related, 1000)).slice(0, 2000)),
    () => encode(rng.pick(related)),
    () => param.toUpperCase(),
    () => `${param}${rng.pick(['/', '//', '%00', '%20', '.json', '/../x'])}`,
    () => randomUuid(rng),
  ];
  const value = rng.pick(choices)();
  return { what: `path id ${JSON.stringify(value.slice(0, 40))}`, param: value, blame: [] };
}

function mutateQuery(rng: Rng, query: Record<string, string> | undefined, related: readonly string[]): Draft {
  const valid = queryString(query);
  const names = Object.keys(query ?? {});
  const name = names.length && rng.chance(0.7) ? rng.pick(names) : rng.pick(KEYS.filter((k) => k.length < 100));
  const value = asText(rng.chance(0.5) ? rng.pick(NUMBERS) : hostileValue(rng, query?.[name] ?? '', related, 4000)).slice(0, 6000);
  const params = new URLSearchParams(valid);
  const long = 'q'.repeat(rng.pick([100, 8_000]));
  const cases: [string, string[]][] = [
    [(params.set(name, value), params.toString()), [name]],
    [(params.delete(name), params.toString()), [name]],
    [`${valid}&${encode(name)}=${encode(value)}`, [name]],
    [`${valid}&${encode(name)}[]=1&${encode(name)}[a]=2`, [name, `${name}[]`, `${name}[a]`]],
    [`${valid}&${encode(name)}=${rng.pick(['%E0%A4%A', '%zz', '%00', '%', '%FF%FE'])}`, [name, '(query)']],
    [`${valid}&${long}=1`, [long]],
  ];
  const [text, blame] = rng.pick(cases);
  return { what: `query ${JSON.stringify(name.slice(0, 20))}`, query: text, blame };
}

/** Credentials gone wrong: none, malformed, someone else's, or a key of another role. */
function mutateAuth(rng: Rng, own: string, keys: Keys): Draft {
  const swapped = rng.pick([keys.product, keys.operator, keys.internal, keys.other, ...keys.tokens].filter((k) => k !== own));
  const variants: Record<string, string | string[]>[] = [
    {},
    { authorization: 'Bearer wrong-key-0123456789abcdef' },
    { authorization: `Bearer ${swapped}` },
    { authorization: `Bearer ${keys.other}` },
    { 'x-api-key': swapped },
    { authorization: 'Bearer' },
    { authorization: 'Bearer ' },
    { authorization: `bearer ${own}` },
    { authorization: `Basic ${Buffer.from(`user:${own}`).toString('base64')}` },
    { authorization: `Bearer ${own}x` },
    { authorization: `Bearer ${own.slice(0, -1)}` },
    { authorization: `Bearer ${own.toUpperCase()}` },
    { authorization: `Bearer ${'k'.repeat(rng.pick([1_000, 8_000]))}` },
    { authorization: 'Bearer \xff\xfe\xe9' },
    { authorization: ['Bearer wrong-key-0123456789abcdef', `Bearer ${own}`] },
    { authorization: 'Bearer wrong-key-0123456789abcdef', 'x-api-key': own },
    { authorization: `Bearer ${own}`, 'x-api-key': 'wrong-key-0123456789abcdef' },
    { 'x-api-key': `${own}, ${own}` },
  ];
  const pick = rng.int(variants.length);
  return { what: `credentials variant ${pick}`, headers: variants[pick]!, blame: ['authorization', 'x-api-key'] };
}

const CONTENT_TYPES = [
  'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16',
  'application/json; charset=latin1', 'application/json; charset=""', 'APPLICATION/JSON', 'application/json5', 'application/vnd.api+json',
  'application/jsonp', '*/*', 'application/json, text/plain', `application/${'x'.repeat(2_000)}`, 'application/json;;;', ' application/json',
  'application/json; charset=\xff', 'application/octet-stream', 'application/xml',
];

function mutateType(rng: Rng): Draft {
  const type = rng.chance(0.1) ? undefined : rng.pick(CONTENT_TYPES);
  const headers: Record<string, string> = type === undefined ? {} : { 'content-type': type };
  if (rng.chance(0.2)) headers['content-encoding'] = rng.pick(['gzip', 'br', 'identity', 'bogus']);
  return { what: `content-type ${JSON.stringify(type?.slice(0, 40) ?? 'none')}`, headers, blame: ['(body)', 'content-type'] };
}

/** Requests no HTTP client would send: written byte for byte on a socket of their own. */
function malformedHttp(rng: Rng, method: string, path: string, auth: Record<string, string>, body: Buffer): FuzzRequest {
  const authLine = Object.entries(auth).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const head = (extra: string, line = `${method} ${path} HTTP/1.1`) =>
    `${line}\r\nhost: fuzz\r\nconnection: close\r\n${authLine}content-type: application/json\r\n${extra}`;
  const withLength = (extra = '') => Buffer.concat([Buffer.from(`${head(extra)}content-length: ${body.length}\r\n\r\n`, 'latin1'), body]);
  const cases: [string, () => Buffer][] = [
    ['NUL in a header value', () => withLength('x-test: a\u0000b\r\n')],
    ['header line without a colon', () => withLength('no-colon-here\r\n')],
    ['content-length is not a number', () => Buffer.from(`${head('content-length: abc\r\n')}\r\n{}`, 'latin1')],
    ['two content-lengths', () => Buffer.from(`${head('content-length: 2\r\ncontent-length: 3\r\n')}\r\n{} `, 'latin1')],
    ['content-length and chunked', () => Buffer.from(`${head('content-length: 2\r\ntransfer-encoding: chunked\r\n')}\r\n2\r\n{}\r\n0\r\n\r\n`, 'latin1')],
    ['bad chunk size', () => Buffer.from(`${head('transfer-encoding: chunked\r\n')}\r\nzz\r\n{}\r\n0\r\n\r\n`, 'latin1')],
    ['headers over 16 KiB', () => withLength(`x-big: ${'a'.repeat(20_000)}\r\n`)],
    ['space in the path', () => Buffer.from(`${head('content-length: 2\r\n', `${method} ${path} x HTTP/1.1`)}\r\n{}`, 'latin1')],
    ['raw bytes in the path', () => Buffer.from(`${head('content-length: 2\r\n', `${method} ${path}\xff\xfe HTTP/1.1`)}\r\n{}`, 'latin1')],
    ['HTTP/1.0', () => Buffer.concat([Buffer.from(`${head(`content-length: ${body.length}\r\n`, `${method} ${path} HTTP/1.0`)}\r\n`, 'latin1'), body])],
    ['lower-case method', () => Buffer.from(`${head('content-length: 2\r\n', `${method.toLowerCase()} ${path} HTTP/1.1`)}\r\n{}`, 'latin1')],
    ['unknown method', () => Buffer.from(`${head('content-length: 2\r\n', `BREW ${path} HTTP/1.1`)}\r\n{}`, 'latin1')],
    ['bare LF line ends', () => Buffer.from(`${head(`content-length: ${body.length}\r\n`)}\r\n`.replace(/\r\n/g, '\n'), 'latin1')],
    ['TLS hello', () => Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03])],
    ['folded header', () => withLength('x-folded: a\r\n b\r\n')],
    ['space before a colon', () => withLength('x-space : 1\r\n')],
    ['bad header name', () => withLength('x(bad): 1\r\n')],
    ['absolute-form target', () => Buffer.from(`${head('content-length: 2\r\n', `${method} http://evil.example${path} HTTP/1.1`)}\r\n{}`, 'latin1')],
  ];
  const [what, make] = rng.pick(cases);
  return { what: `malformed HTTP: ${what}`, method, path, headers: {}, raw: make(), blame: [] };
}

/** Whether the body is refused whole: over the limit, not JSON, or with a key fastify's parser forbids. */
function refusedWhole(body: Buffer, limit: number): boolean {
  if (body.length > limit) return true;
  const text = body.toString('utf8');
  try {
    JSON.parse(text);
  } catch {
    return true;
  }
  return text.includes('"__proto__"') || text.includes('"prototype"');
}

/**
 * A hostile request for `ep`, made from its valid request: `related` are other objects' ids and
 * tokens, `keys` the credentials to misuse, `limit` the body limit to generate bodies around.
 */
export function hostileRequest(
  rng: Rng, ep: Endpoint, valid: ValidRequest, related: readonly string[], keys: Keys, limit: number,
): FuzzRequest {
  const hasBody = ep.method === 'POST';
  const roll = rng.int(100);
  const own = ownKey(ep, valid, keys);
  let draft: Draft;
  // On a public route a key changes nothing; it is still sent, in every wrong shape.
  if (roll < 10) draft = mutateAuth(rng, own ?? keys.product, keys);
  else if (roll < 17) draft = mutateType(rng);
  else if (roll < 22) draft = { what: 'malformed HTTP', malformed: true, blame: [] };
  else if (roll < 32 && valid.param !== undefined) draft = mutateParam(rng, valid.param, related);
  else if (!hasBody || roll < 40) draft = rng.chance(hasBody ? 1 : 0.8) ? mutateQuery(rng, valid.query, related) : mutateBody(rng, valid.body, limit);
  else if (roll < 55) draft = mutateBody(rng, valid.body, limit);
  else if (roll < 65) draft = mutateMany(rng, ep, valid.body, related, limit);
  else draft = mutateField(rng, ep, valid.body, related, limit);

  const param = draft.param ?? (valid.param === undefined ? undefined : encode(valid.param));
  const query = draft.query ?? queryString(valid.query);
  const path = `${param === undefined ? ep.route : ep.route.replace(':param', param)}${query ? `?${query}` : ''}`;
  const auth = authHeaders(own);
  const sendsBody = hasBody || draft.body !== undefined || draft.bytes !== undefined;
  const body = draft.bytes ?? (sendsBody ? encodeJson('body' in draft ? draft.body : valid.body) : undefined);
  if (draft.malformed) return malformedHttp(rng, ep.method, path, auth, body ?? Buffer.from('{}'));
  // A change that broke the JSON as a whole (a bad literal, a forbidden key, the size) is the body's fault.
  const blame = body && refusedWhole(body, limit) ? [...draft.blame, '(body)'] : draft.blame;
  const headers: Record<string, string | string[]> = { ...auth, ...(body ? { 'content-type': 'application/json' } : {}), ...draft.headers };
  if (draft.headers && !('authorization' in draft.headers) && draft.blame.includes('authorization')) delete headers.authorization;
  return { what: draft.what, method: ep.method, path, headers, body, blame };
}
