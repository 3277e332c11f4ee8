import { HttpException } from '@nestjs/common';
import { ErrorCode, describeProblems, type ErrorBody, type FieldProblem } from '@avatar-fleet/contracts';

const MAX_FIELDS = 20;

/** An HTTP error whose body is the fleet's ErrorBody: a code, a message, and the fields at fault. */
export class ApiError extends HttpException {
  constructor(status: number, code: ErrorCode, message: string, fields?: FieldProblem[]) {
    const body: ErrorBody = { error: { code, message, ...(fields ? { fields } : {}) } };
    super(body, status);
    this.code = code;
  }

  readonly code: ErrorCode;

  /** Names the first MAX_FIELDS bad fields: a body with thousands of them does not get an answer thousands of lines long. */
  static validation(fields: FieldProblem[]): ApiError {
    const shown = fields.slice(0, MAX_FIELDS);
    const more = fields.length > shown.length ? ` | and ${fields.length - shown.length} more` : '';
    return new ApiError(400, ErrorCode.ValidationFailed, `invalid request: ${describeProblems(shown)}${more}`, shown);
  }

  static notFound(what: string): ApiError {
    return new ApiError(404, ErrorCode.NotFound, `${what} not found`);
  }

  static staleLease(jobId: string): ApiError {
    return new ApiError(409, ErrorCode.StaleLease, `job ${jobId}: this attempt no longer holds the lease; nothing was changed`);
  }
}
