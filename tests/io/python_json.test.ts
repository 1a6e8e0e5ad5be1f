import { describe, expect, it } from 'vitest';
import { parsePythonJson } from '../../src/io/python_json.ts';

describe("parsePythonJson (configs written by Python's json module)", () => {
  it('reads bare NaN, Infinity and -Infinity as numbers', () => {
    const v = parsePythonJson('{"lambda_min_clipped": -Infinity, "a": Infinity, "b": [NaN, 1.5], "c": null}') as Record<string, unknown>;
    expect(v.lambda_min_clipped).toBe(-Infinity);
    expect(v.a).toBe(Infinity);
    expect((v.b as number[])[0]).toBeNaN();
    expect((v.b as number[])[1]).toBe(1.5);
    expect(v.c).toBeNull();
  });
  it('leaves the words alone inside strings', () => {
    expect(parsePythonJson('{"note": "NaN and -Infinity \\" Infinity", "x": -Infinity}')).toEqual({ note: 'NaN and -Infinity " Infinity', x: -Infinity });
  });
  it('is plain JSON.parse otherwise, errors included', () => {
    expect(parsePythonJson('{"a": [1, 2]}')).toEqual({ a: [1, 2] });
    expect(() => parsePythonJson('{"a": 1,}')).toThrow(SyntaxError);
    expect(() => parsePythonJson('{"a": Infinityx}')).toThrow(SyntaxError);
  });
});
