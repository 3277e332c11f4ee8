import type { ArgumentMetadata, PipeTransform } from '@nestjs/common';
import type { ClassConstructor } from 'class-transformer';
import { camelizeKeys, sentNames, validateDto } from '@avatar-fleet/contracts';
import { ApiError } from './api-error';

/** What a job's worker reports as its result is kept as sent, snake_case and all. */
const OPAQUE = new Set(['result']);

/**
 * Validates a body or query against a contracts DTO; 400 naming every bad field. With
 * `snakeCase` (the worker API), `worker_id` and its kind are accepted as `workerId`.
 */
export class DtoPipe<T extends object> implements PipeTransform<unknown, T> {
  constructor(
    private readonly dto: ClassConstructor<T>,
    private readonly options: { snakeCase?: boolean } = {},
  ) {}

  transform(value: unknown, metadata?: ArgumentMetadata): T {
    // No body at all is an empty object; a JSON `null` body is refused like any other non-object.
    let plain: unknown = value === undefined ? {} : value;
    let renamed: ReadonlyMap<string, string> = new Map();
    if (this.options.snakeCase) {
      const camel = camelizeKeys(plain, OPAQUE);
      if (camel.problems.length) throw ApiError.validation(camel.problems);
      plain = camel.value;
      renamed = camel.renamed;
    }
    const result = validateDto(this.dto, plain, metadata?.type === 'query' ? '(query)' : '(body)');
    if (!result.ok) throw ApiError.validation(sentNames(result.fields, renamed));
    return result.value;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Path ids are UUIDs; anything else is a 400 before the database sees it. */
export class UuidPipe implements PipeTransform<string, string> {
  constructor(private readonly name = 'id') {}

  transform(value: string): string {
    if (!UUID.test(value)) throw ApiError.validation([{ field: this.name, problems: [`${this.name} must be a UUID`] }]);
    return value.toLowerCase();
  }
}
