import 'reflect-metadata';
import { plainToInstance, type ClassConstructor } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import type { FieldProblem } from './errors';

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; fields: FieldProblem[] };

/**
 * Validates a plain value against a DTO class. Unknown properties are rejected (not silently
 * dropped) so that a typo in a field name is reported instead of ignored.
 */
export function validateDto<T extends object>(cls: ClassConstructor<T>, plain: unknown, root = '(body)'): ValidationResult<T> {
  if (plain === null || typeof plain !== 'object' || Array.isArray(plain)) {
    return { ok: false, fields: [{ field: root, problems: ['must be a JSON object'] }] };
  }
  const unsafe = plainProblems(plain, root);
  if (unsafe.length) return { ok: false, fields: unsafe };
  const value = plainToInstance(cls, plain, { exposeDefaultValues: true });
  const errors = validateSync(value, { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true });
  return errors.length === 0 ? { ok: true, value } : { ok: false, fields: flattenErrors(errors) };
}

/** Deeper than any request of the fleet: class-transformer, JSON.stringify and PostgreSQL all recurse. */
export const MAX_JSON_DEPTH = 32;
const MAX_REPORTED = 10;
// NUL, and UTF-16 surrogates without their other half: PostgreSQL stores neither in text or jsonb.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * What class-validator cannot report because something fails before it does: nesting deeper than
 * MAX_JSON_DEPTH (a stack overflow), keys that name Object.prototype members (class-transformer
 * takes `constructor` for the object's class and drops keys such as `toString` without a word), and
 * strings PostgreSQL cannot store. Keys and string values at any depth; the first few problems.
 * `root` names the value itself (`(body)`, `(query)`); fields below it are named by their path.
 */
export function plainProblems(value: unknown, root = '(body)', field: string | null = null, depth = 0, out: FieldProblem[] = []): FieldProblem[] {
  const at = field ?? root;
  if (out.length >= MAX_REPORTED) return out;
  if (typeof value === 'string') {
    if (UNSTORABLE.test(value)) out.push({ field: at, problems: [`${at} must not contain NUL characters or unpaired UTF-16 surrogates`] });
    return out;
  }
  if (value === null || typeof value !== 'object') return out;
  if (depth >= MAX_JSON_DEPTH) {
    out.push({ field: at, problems: [`${at} is nested more than ${MAX_JSON_DEPTH} levels deep`] });
    return out;
  }
  for (const [key, child] of Object.entries(value)) {
    const path = field === null ? key : `${field}.${key}`;
    if (Object.prototype.hasOwnProperty.call(Object.prototype, key)) out.push({ field: path, problems: [`key "${key}" is not allowed: it names a member of Object.prototype`] });
    else if (UNSTORABLE.test(key)) out.push({ field: path, problems: ['keys must not contain NUL characters or unpaired UTF-16 surrogates'] });
    else plainProblems(child, root, path, depth + 1, out);
    if (out.length >= MAX_REPORTED) break;
  }
  return out;
}

export function flattenErrors(errors: ValidationError[], prefix = ''): FieldProblem[] {
  const out: FieldProblem[] = [];
  for (const e of errors) {
    const field = prefix ? `${prefix}.${e.property}` : e.property;
    if (e.constraints) out.push({ field, problems: e.value === undefined ? [required(e)] : Object.values(e.constraints) });
    if (e.children?.length) out.push(...flattenErrors(e.children, field));
  }
  return out;
}

/**
 * A missing field fails every constraint on it ("must be an integer", "must not be less than 1", ...);
 * the one thing to say is that it is required (in the field's own words when it has them).
 */
function required(e: ValidationError): string {
  return e.constraints?.isDefined ?? `${e.property} is required`;
}

export function describeProblems(fields: FieldProblem[]): string {
  return fields.map((f) => `${f.field}: ${f.problems.join('; ')}`).join(' | ');
}
