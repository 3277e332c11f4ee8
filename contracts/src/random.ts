/**
 * mulberry32: a tiny, fast, well-mixed 32-bit PRNG, deterministic on every platform. For data that
 * must come out the same from the same seed (the dev model set's weights, the fuzzer's requests);
 * never for anything secret. Returns numbers in [0, 1).
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
