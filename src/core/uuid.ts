/** UUID text in the forms github.com/google/uuid Parse accepts: canonical, {braced}, urn:uuid:, 32 hex digits. */
export function isUuid(s: string): boolean {
  return uuidHex(s) !== '';
}

/** The 32 hex digits of a UUID text, or '' when it is not one. */
export function uuidHex(s: string): string {
  let t = s;
  if (t.length === 45 && t.slice(0, 9).toLowerCase() === 'urn:uuid:') t = t.slice(9);
  else if (t.length === 38 && t.startsWith('{') && t.endsWith('}')) t = t.slice(1, -1);
  if (t.length === 36 && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(t)) return t.replace(/-/g, '');
  if (t.length === 32 && /^[0-9a-f]{32}$/i.test(t)) return t;
  return '';
}
