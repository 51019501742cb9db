import { describe, expect, it } from "vitest";
import { parseResultData } from "../../src/core/tasks/result.js";

const bytes = (s: string) => new TextEncoder().encode(s);

describe("parseResultData", () => {
  it("reads a JSON object", () => {
    expect(parseResultData(bytes('{"steps": 2, "notes": ["a"]}'))).toEqual({ data: { steps: 2, notes: ["a"] }, dataError: "" });
  });

  it("no file is neither data nor an error", () => {
    expect(parseResultData(undefined)).toEqual({ dataError: "" });
  });

  it.each([
    ["invalid JSON", "{steps: 2", /^result file is not valid JSON: /],
    ["empty file", "", /^result file is not valid JSON: /],
    ["an array", "[1,2]", /^result file must hold a JSON object \(got an array\)$/],
    ["a number", "42", /\(got number\)$/],
    ["null", "null", /\(got null\)$/],
  ])("reports %s without data", (_name, text, error) => {
    const r = parseResultData(bytes(text));
    expect(r.data).toBeUndefined();
    expect(r.dataError).toMatch(error);
  });

  it("reports invalid UTF-8 and oversize files", () => {
    expect(parseResultData(new Uint8Array([0x7b, 0xff, 0x7d])).dataError).toBe("result file is not valid UTF-8");
    expect(parseResultData(bytes('{"a": 1}'), 4).dataError).toBe("result file is larger than 4 bytes");
  });
});
