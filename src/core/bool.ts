/**
 * Go's boolean spellings (strconv.ParseBool), the one list that metadata values, config
 * fields, flags and query parameters all read booleans with.
 */
const TRUE_TEXT: ReadonlySet<string> = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE_TEXT: ReadonlySet<string> = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/** true/false for Go's spellings, undefined for anything else (no trimming). */
export function parseGoBool(text: string): boolean | undefined {
  if (TRUE_TEXT.has(text)) return true;
  if (FALSE_TEXT.has(text)) return false;
  return undefined;
}

/** True only for one of Go's spellings of true. */
export function isGoTrue(text: string): boolean {
  return TRUE_TEXT.has(text);
}
