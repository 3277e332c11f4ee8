import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fromHalf, fromHalfArray, toHalf, toHalfArray } from '../src/inference/float16';

describe('float16 conversion', () => {
  test('known bit patterns', () => {
    const cases: Array<[number, number]> = [[0, 0x0000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [2 ** -24, 0x0001], [Infinity, 0x7c00], [-Infinity, 0xfc00]];
    for (const [value, bits] of cases) {
      assert.equal(toHalf(value), bits, `toHalf(${value})`);
      assert.equal(fromHalf(bits), value, `fromHalf(0x${bits.toString(16)})`);
    }
    assert.equal(toHalf(1e6), 0x7c00, 'overflow saturates to infinity');
    assert.ok(Number.isNaN(fromHalf(toHalf(NaN))));
  });

  test('rounds to nearest even and keeps relative error under 2^-11 over the normal range', () => {
    assert.equal(toHalf(1 + 2 ** -11), 0x3c00, 'a tie rounds to even (down)');
    assert.equal(toHalf(1 + 3 * 2 ** -11), 0x3c02, 'a tie rounds to even (up)');
    const values = Float32Array.from({ length: 2000 }, (_, i) => Math.sin(i) * 10 ** ((i % 9) - 4));
    const back = fromHalfArray(toHalfArray(values));
    values.forEach((v, i) => {
      if (Math.abs(v) > 6.2e-5) assert.ok(Math.abs(back[i]! - v) <= Math.abs(v) * 2 ** -11, `${v} -> ${back[i]}`);
    });
  });
});
