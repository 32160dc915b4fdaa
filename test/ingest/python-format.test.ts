// backends: sqlite only: Python-compatible formatting as functions; no database
import { describe, expect, it } from "vitest";
import { pyFloat, pyJsonDumps, pyLen, pyStr } from "../../src/ingest/python-format.js";

describe("pyFloat", () => {
  it.each([
    [5, "5.0"],
    [-5, "-5.0"],
    [0.5, "0.5"],
    [1e12, "1000000000000.0"],
    [1e16, "1e+16"],
    [1.5e-5, "1.5e-05"],
    [0.0001, "0.0001"],
    [123456789012345680, "1.2345678901234568e+17"],
    [Number.NaN, "nan"],
    [Number.POSITIVE_INFINITY, "inf"],
    [Number.NEGATIVE_INFINITY, "-inf"],
  ])("should print %s as Python's repr does: %s", (x, expected) => {
    expect(pyFloat(x)).toBe(expected);
  });
});

describe("pyStr", () => {
  it("should print JSON values as Python's str() prints the decoded values", () => {
    expect(pyStr(true)).toBe("True");
    expect(pyStr(null)).toBe("None");
    expect(pyStr(200)).toBe("200");
    expect(pyStr(1.5)).toBe("1.5");
    expect(pyStr("plain")).toBe("plain");
    expect(pyStr({ a: [1, "x"], b: false })).toBe("{'a': [1, 'x'], 'b': False}");
  });
});

describe("pyJsonDumps and pyLen", () => {
  it("should serialize with Python's separators and ASCII escapes", () => {
    expect(pyJsonDumps({ a: [1, 2], b: "é" })).toBe('{"a": [1, 2], "b": "\\u00e9"}');
  });
  it("should count code points, not UTF-16 units", () => {
    expect(pyLen("😀é")).toBe(2);
  });
});
