import 'reflect-metadata';
import { plainToInstance, type ClassConstructor } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import type { FieldProblem } from './errors';

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; fields: FieldProblem[] };

/**
 * Validates a plain value against a DTO class. Unknown properties are rejected (not silently
 * dropped) so that a typo in a field name is reported instead of ignored.
 */
export function validateDto<T extends object>(cls: ClassConstructor<T>, plain: unknown): ValidationResult<T> {
  if (plain === null || typeof plain !== 'object' || Array.isArray(plain)) {
    return { ok: false, fields: [{ field: '(body)', problems: ['must be a JSON object'] }] };
  }
  const value = plainToInstance(cls, plain, { exposeDefaultValues: true });
  const errors = validateSync(value, { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true });
  return errors.length === 0 ? { ok: true, value } : { ok: false, fields: flattenErrors(errors) };
}

export function flattenErrors(errors: ValidationError[], prefix = ''): FieldProblem[] {
  const out: FieldProblem[] = [];
  for (const e of errors) {
    const field = prefix ? `${prefix}.${e.property}` : e.property;
    if (e.constraints) out.push({ field, problems: Object.values(e.constraints) });
    if (e.children?.length) out.push(...flattenErrors(e.children, field));
  }
  return out;
}

export function describeProblems(fields: FieldProblem[]): string {
  return fields.map((f) => `${f.field}: ${f.problems.join('; ')}`).join(' | ');
}
