/**
 * Hostile values for the fuzzer (fuzz-runner.ts): a seeded random source, values of every wrong
 * shape, and one-step mutations of a valid JSON body. Everything here is deterministic for a seed,
 * so a failing request can be found again by its seed and index.
 */
import { mulberry32 } from '@avatar-fleet/contracts';

/** Picks cases from a seed (mulberry32): the same seed gives the same requests. */
export class Rng {
  readonly next: () => number;

  constructor(seed: number) {
    this.next = mulberry32(seed);
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

/*
 * JSON.stringify cannot write invalid UTF-8 or non-JSON literals, so values carry markers that
 * encodeJson() swaps for raw bytes after stringifying: `~~raw:N~~` inside a string becomes the
 * bytes INVALID_UTF8[N], a whole string `"~~lit:N~~"` becomes the literal text LITERALS[N], and
 * `"~~deep:N:a~~"` (or `:o`) arrays (objects) nested N deep, which JSON.stringify could not write.
 */
export const INVALID_UTF8: readonly Buffer[] = [
  Buffer.from([0xff]), Buffer.from([0xc3, 0x28]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xc0, 0xaf]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from([0xe2, 0x82]), Buffer.from([0xfe, 0xfe, 0xff, 0xff]),
];
const LITERALS = [
  '1e400', '-1e400', '1e-400', '00', '+1', '.5', '1.', 'NaN', 'Infinity', '-Infinity', '0x10', 'undefined', "'single'",
  '"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"a\\u0000b"', '"\\u12"', '"\\x41"', 'tru', '-', '[1,]', '{"a":1,}',
  '{"a" 1}', '"unterminated', '"a"/*comment*/', '12345678901234567890123456789', '-0.0e-0', '1E+2', '"\\/"',
];
const raw = (n: number) => `~~raw:${n % INVALID_UTF8.length}~~`;
const literal = (n: number) => `~~lit:${n % LITERALS.length}~~`;

/** Arrays (or objects) nested `depth` levels deep, as a marker for encodeJson(). */
export const deep = (depth: number, asObject: boolean) => `~~deep:${depth}:${asObject ? 'o' : 'a'}~~`;

function deepText(depth: number, asObject: boolean): string {
  return asObject ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}` : `${'['.repeat(depth)}1${']'.repeat(depth)}`;
}

export function encodeJson(value: unknown): Buffer {
  const text = JSON.stringify(value) ?? 'null';
  const parts: Buffer[] = [];
  let last = 0;
  for (const m of text.matchAll(/"~~lit:(\d+)~~"|"~~deep:(\d+):([ao])~~"|~~raw:(\d+)~~/g)) {
    parts.push(Buffer.from(text.slice(last, m.index), 'utf8'));
    if (m[1] !== undefined) parts.push(Buffer.from(LITERALS[Number(m[1])]!, 'utf8'));
    else if (m[2] !== undefined) parts.push(Buffer.from(deepText(Number(m[2]), m[3] === 'o'), 'utf8'));
    else parts.push(INVALID_UTF8[Number(m[4])]!);
    last = m.index + m[0].length;
  }
  parts.push(Buffer.from(text.slice(last), 'utf8'));
  return Buffer.concat(parts);
}

/** An object with `key` as an own, enumerable property, even for `__proto__`. */
export function withKey(target: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  return target;
}

export const NUMBERS: readonly number[] = [
  0, -0, -1, 0.5, -0.5, 1.5, 2 ** 31 - 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 53) - 2, 1e21, -1e21,
  1e308, -1e308, Number.MIN_VALUE, 101, 201, 1001, -1001, 4097, 25_001, 60_001, 65_536, 86_401, 2161, 52,
];

const STRINGS: readonly string[] = [
  '', ' ', '0', '-1', '1e999', 'true', 'null', 'NaN', 'undefined', '\u0000', 'a\u0000b', '\ud800', 'x\udfffy', '\u202eevil',
  '\u200b', '\ufeffbom', 'é'.normalize('NFD'), "'; DROP TABLE jobs; --", '$1', '%s%s%n', '${7*7}', '{{7*7}}',
  '../../../etc/passwd', '/etc/passwd', 'a/../b', 'C:\\Windows\\win.ini', 'http://', 'javascript:alert(1)',
  'file:///etc/passwd', 'http://127.0.0.1:5432/', 'https://exa mple.com/a', '__proto__', 'constructor', 'prototype',
  'toString', 'line\r\nX-Injected: 1', '<script>alert(1)</script>', 'lipsync ', 'LIPSYNC', 'avatar.prepare\u0000',
  '00000000-0000-0000-0000-000000000000', '{00000000-0000-4000-8000-000000000000}', 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz',
  raw(0), `a${raw(2)}b`, `${raw(4)}${raw(5)}`, 'worker one', 'drain', 'none', 'running', 'completed', 'failed',
];

/** Keys a body never has: unknown fields, prototype members, oddities of JSON object keys. */
export const KEYS: readonly string[] = [
  'extra', 'Kind', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__',
  '', ' ', 'a.b', '$where', '\u0000', `k${raw(1)}`, '🙂', '0', '-1', 'x'.repeat(5_000),
];

function longString(rng: Rng, limit: number): string {
  const sizes = [65, 129, 201, 257, 501, 2_049, 4_001, 10_000, Math.floor(limit / 2), limit + 16];
  return rng.pick(['x', 'é', '🙂', '\\', '"', '%']).repeat(rng.pick(sizes));
}

/** A string of random code points, lone surrogates and controls included. */
function randomUnicode(rng: Rng): string {
  let out = '';
  for (let n = 1 + rng.int(40); n > 0; n--) {
    const range = rng.pick([0x20, 0x80, 0x800, 0xd800, 0xe000, 0x10000, 0x110000]);
    out += String.fromCodePoint(rng.int(range) % 0x110000);
  }
  return out;
}

function reservedObject(rng: Rng): unknown {
  return JSON.parse(rng.pick([
    '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}', '{"constructor":1}',
    '{"constructor":{"name":"x"}}', '{"toString":"x"}', '{"hasOwnProperty":1}', '{"valueOf":{}}', '{"prototype":null}',
  ]));
}

/**
 * A value of the wrong type, size or content. `original` is the valid value it replaces (wrapped,
 * repeated or nested); `related` are other real ids and tokens from the fixtures (another job,
 * worker or lease), so a request can act on something that is not its own.
 */
export function hostileValue(rng: Rng, original: unknown, related: readonly string[], limit: number): unknown {
  switch (rng.int(14)) {
    case 0: return rng.pick([null, true, false, 0, 1, -1, '', [], {}]);
    case 1: return rng.pick(NUMBERS);
    case 2: return rng.pick(STRINGS);
    case 3: return longString(rng, limit);
    case 4: return randomUnicode(rng);
    case 5: return literal(rng.int(LITERALS.length));
    case 6: return rng.pick([[original], [original, original], [[original]], { value: original }, [null]]);
    case 7: {
      // Copies of a small original only: 20,000 copies of a large one would exhaust the fuzzer's memory.
      const small = original === null || typeof original !== 'object' ? asText(original).length < 100 : false;
      return Array.from({ length: rng.pick([65, 1_000, 20_000]) }, () => (small && rng.chance(0.5) ? original : 0));
    }
    case 8: return deep(rng.pick([33, 65, 200, 5_000, 50_000]), rng.chance(0.5));
    case 9: return reservedObject(rng);
    case 10: return Object.fromEntries(Array.from({ length: rng.pick([100, 5_000]) }, (_, i) => [`k${i}`, i]));
    case 11: return related.length ? rng.pick(related) : rng.pick(STRINGS);
    case 12: return typeof original === 'string' ? `${original}${rng.pick(['', ' ', '\u0000', raw(3), '/..', '%00'])}`.slice(rng.int(2)) : asText(original);
    default: return typeof original === 'number' ? rng.pick([original + 1, original - 1, -original, original * 1e6, original + 0.5]) : rng.pick(NUMBERS);
  }
}

/** A hostile value as text for a path or a query (String() throws on `{"toString":"x"}`). */
export function asText(value: unknown): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? 'undefined');
}

export type Path = (string | number)[];

/** The dotted name the orchestrator gives `path` (raw-byte markers as the server decodes them). */
export function pathName(path: Path): string {
  const name = path.length ? path.join('.') : '(body)';
  return name.replace(/~~raw:(\d+)~~/g, (_, n: string) => INVALID_UTF8[Number(n)]!.toString('utf8'));
}

/** Every path in a JSON value, containers included (not the root). */
export function allPaths(value: unknown, prefix: Path = []): Path[] {
  if (value === null || typeof value !== 'object') return [];
  const out: Path[] = [];
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  for (const [k, v] of entries) {
    out.push([...prefix, k]);
    out.push(...allPaths(v, [...prefix, k]));
  }
  return out;
}

/** A deep copy of plain JSON data (the fixtures' bodies). */
export function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function parentOf(root: unknown, path: Path): Record<string | number, unknown> {
  let node = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  return node;
}

export function getAt(root: unknown, path: Path): unknown {
  return path.length ? parentOf(root, path)[path[path.length - 1]!] : root;
}

/** Sets (or, with `remove`, deletes) the value at `path`; own properties only, `__proto__` included. */
export function setAt(root: unknown, path: Path, value: unknown, remove = false): void {
  const parent = parentOf(root, path);
  const key = path[path.length - 1]!;
  if (Array.isArray(parent) && typeof key === 'number') {
    if (remove) parent.splice(key, 1);
    else parent[key] = value;
  } else if (remove) delete parent[key];
  else withKey(parent as Record<string, unknown>, String(key), value);
}
