/**
 * Shared pieces of the property tests in test/fuzz: the fast-check run parameters (a fixed run
 * count by default, time-boxed by FUZZ_SECONDS), the "only ProtocolError" check, and the
 * byte mutations and cuttings the decoders are fed.
 */
import fc from 'fast-check';
import { ProtocolError } from '../../src/core/errors';

/**
 * fast-check parameters for a file with `properties` properties: a fixed run count by default
 * (≈ 4 s for the whole file); with FUZZ_SECONDS=n the properties share n seconds and each runs
 * until its slice is spent.
 */
export function fuzzParams(properties: number): <T>(numRuns?: number) => fc.Parameters<T> {
  const budgetMs = process.env.FUZZ_SECONDS ? Number(process.env.FUZZ_SECONDS) * 1000 : 4000;
  const timeBoxed = Boolean(process.env.FUZZ_SECONDS);
  return <T>(numRuns = 300): fc.Parameters<T> => {
    const slice = Math.max(100, Math.floor(budgetMs / properties));
    return timeBoxed
      ? { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: slice, markInterruptAsFailure: false }
      : { numRuns, interruptAfterTimeLimit: slice, markInterruptAsFailure: false };
  };
}

/** Runs `f`; anything thrown must be a ProtocolError. */
export function onlyProtocolErrors(f: () => void): void {
  try {
    f();
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
  }
}

/** Byte overwrites for `mutate`: 1 to `maxLength` pairs of (offset, value). */
export function editsArb(maxLength: number): fc.Arbitrary<Array<[number, number]>> {
  return fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength });
}

/** Valid inputs from `valid` with 1 to `maxEdits` bytes overwritten, then cut short (see `mutate`). */
export function mutatedArb(valid: fc.Arbitrary<Buffer | Uint8Array>, maxEdits: number): fc.Arbitrary<Buffer> {
  return fc.tuple(valid, editsArb(maxEdits), fc.nat()).map(([bytes, edits, cut]) => mutate(bytes, edits, cut));
}

/** A copy of `bytes` with the edits applied (offsets modulo the length), cut to 1 + `cut` bytes at most. */
export function mutate(bytes: Buffer | Uint8Array, edits: ReadonlyArray<readonly [number, number]>, cut: number): Buffer {
  const b = Buffer.from(bytes);
  for (const [at, v] of edits) b[at % b.length] = v;
  return b.subarray(0, 1 + (cut % b.length));
}
