import type { FieldProblem } from '../errors';
import { MAX_JSON_DEPTH } from '../validation';

/** `worker_id`, `lease_token`, `gpu_class_name`: lower-case words joined by single underscores. */
const SNAKE = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$/;

const camel = (key: string) => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

export interface Camelized {
  value: unknown;
  problems: FieldProblem[];
  /** The dotted path of each renamed field (as validation names it) -> the path as the client sent it. */
  renamed: Map<string, string>;
}

/**
 * Legacy hosts (seed 003, a Python FastAPI worker) write `worker_id`, `lease_token`, `gpu_class_name`.
 * The worker API accepts those spellings by renaming them before validation, and names them in
 * its answers as they were sent (`sentNames`). Values under an `opaque` key (a job's result) are
 * the worker's own data and are kept exactly as sent. Nothing deeper than MAX_JSON_DEPTH is
 * walked: validation refuses such a body by itself.
 */
export function camelizeKeys(value: unknown, opaque: ReadonlySet<string>): Camelized {
  const problems: FieldProblem[] = [];
  const renamed = new Map<string, string>();
  const walk = (node: unknown, at: string, sent: string, depth: number): unknown => {
    if (node === null || typeof node !== 'object' || depth >= MAX_JSON_DEPTH) return node;
    const join = (base: string, key: string) => (base ? `${base}.${key}` : key);
    if (Array.isArray(node)) return node.map((item, i) => walk(item, join(at, String(i)), join(sent, String(i)), depth + 1));
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(node)) {
      const name = SNAKE.test(key) ? camel(key) : key;
      const field = join(at, name);
      if (Object.prototype.hasOwnProperty.call(out, name)) {
        problems.push({ field: join(sent, key), problems: [`send ${name} once: ${key} and ${name} are the same field`] });
        continue;
      }
      if (name !== key || at !== sent) renamed.set(field, join(sent, key));
      // Defined, not assigned: a `__proto__` key stays an own property, for validation to refuse by name.
      const copy = opaque.has(name) ? child : walk(child, field, join(sent, key), depth + 1);
      Object.defineProperty(out, name, { value: copy, enumerable: true, writable: true, configurable: true });
    }
    return out;
  };
  return { value: walk(value, '', '', 0), problems, renamed };
}

/** Validation problems, with each renamed field (and its name in the messages) as the client sent it. */
export function sentNames(fields: FieldProblem[], renamed: ReadonlyMap<string, string>): FieldProblem[] {
  const leaf = (path: string) => path.slice(path.lastIndexOf('.') + 1);
  return fields.map((f) => {
    // The field itself, or the deepest renamed field above it (problems below the walked depth).
    let prefix = f.field;
    while (prefix && !renamed.has(prefix)) prefix = prefix.includes('.') ? prefix.slice(0, prefix.lastIndexOf('.')) : '';
    if (!prefix) return f;
    const field = renamed.get(prefix)! + f.field.slice(prefix.length);
    const problems = f.problems.map((p) => {
      const whole = p.split(f.field).join(field);
      return prefix === f.field ? whole.split(leaf(f.field)).join(leaf(field)) : whole;
    });
    return { field, problems };
  });
}
