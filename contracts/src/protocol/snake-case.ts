import type { FieldProblem } from '../errors';

/**
 * Legacy hosts (seed 003, a Python FastAPI worker) write `worker_id`, `lease_token`, `gpu_class_name`.
 * The worker API accepts those spellings by renaming them before validation. Values under an
 * `opaque` key (a job's result) are the worker's own data and are kept exactly as sent.
 */
export function camelizeKeys(value: unknown, opaque: ReadonlySet<string>, path = ''): { value: unknown; problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  const walk = (node: unknown, at: string): unknown => {
    if (Array.isArray(node)) return node.map((item, i) => walk(item, at ? `${at}.${i}` : String(i)));
    if (node === null || typeof node !== 'object') return node;
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(node)) {
      const name = key.includes('_') ? key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()) : key;
      const field = at ? `${at}.${name}` : name;
      if (Object.prototype.hasOwnProperty.call(out, name)) {
        problems.push({ field, problems: [`send ${name} once: ${key} and ${name} are the same field`] });
        continue;
      }
      // Defined, not assigned: a `__proto__` key stays an own property, for validation to refuse by name.
      Object.defineProperty(out, name, { value: opaque.has(name) ? child : walk(child, field), enumerable: true, writable: true, configurable: true });
    }
    return out;
  };
  return { value: walk(value, path), problems };
}
