/** Errors of the web API, answered in gost's shape `{code, msg}` with an HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** gost's error codes (x/api): a bad request, a duplicate name, a failed change, not found, a failed save. */
export const ERR_INVALID = 40001;
export const ERR_DUP = 40002;
export const ERR_FAILED = 40003;
export const ERR_NOT_FOUND = 40004;
export const ERR_SAVE_FAILED = 40005;

export function methodNotAllowed(method: string, path: string): ApiError {
  return new ApiError(405, 40500, `${method} ${path}: method not allowed`);
}
