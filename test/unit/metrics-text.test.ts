/**
 * The strict Prometheus text reader the metrics tests rely on: it must refuse what a
 * scraper would refuse, or the "parses as Prometheus text" checks would prove nothing.
 */
import { describe, expect, it } from "vitest";
import { parsePrometheusText, sampleValue } from "../support/prometheus-text.js";

const GOOD = [
  "# HELP x_total Things, with a \\\\ and a \\n.",
  "# TYPE x_total counter",
  'x_total{a="1",b="q\\"uote"} 3',
  "x_total 4 1700000000000",
  "# a plain comment",
  "",
  "# TYPE h histogram",
  'h_bucket{le="0.1"} 1',
  'h_bucket{le="+Inf"} 2',
  "h_sum 0.3",
  "h_count 2",
  "# TYPE g gauge",
  "g Nan",
  "g{k=\"v\"} -Inf",
  "",
].join("\n");

describe("parsePrometheusText", () => {
  it("reads families, types, help, labels and values", () => {
    const families = parsePrometheusText(GOOD);
    expect(families.get("x_total")).toMatchObject({ type: "counter", help: "Things, with a \\ and a \n." });
    expect(sampleValue(families, "x_total", { b: 'q"uote' })).toBe(3);
    expect(sampleValue(families, "h_count")).toBe(2);
    expect(families.get("h")!.samples).toHaveLength(4);
    expect(sampleValue(families, "g", { k: "v" })).toBe(-Infinity);
  });

  it.each([
    ["no trailing newline", "x 1"],
    ["a value that is not a number", "x one\n"],
    ["no value", "x\n"],
    ["a bad metric name", "1x 1\n"],
    ["an unquoted label value", "x{a=1} 1\n"],
    ["an unterminated label value", 'x{a="1} 1\n'],
    ["a bad escape", 'x{a="\\t"} 1\n'],
    ["a label twice", 'x{a="1",a="2"} 1\n'],
    ["a duplicate series", 'x{a="1"} 1\nx{a="1"} 2\n'],
    ["a type after samples", "x 1\n# TYPE x counter\n"],
    ["two types", "# TYPE x counter\n# TYPE x counter\n"],
    ["an unknown type", "# TYPE x thing\n"],
    ["a family split in two", "x 1\ny 1\nx{a=\"b\"} 1\n"],
    ["a histogram without +Inf", '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'],
    ["a histogram that is not cumulative", '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'],
    ["a histogram whose count differs", '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n'],
    ["a stray sample in a histogram", "# TYPE h histogram\nh 1\n"],
    ["trailing garbage", "x 1 2 3\n"],
  ])("refuses %s", (_why, text) => {
    expect(() => parsePrometheusText(text)).toThrow();
  });
});
