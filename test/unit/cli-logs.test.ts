/**
 * `agents logs --tail N` counts lines as `docker logs --tail` does: the last N lines of
 * what the service kept, a final line without a newline counting as one.
 */
import { describe, expect, it } from "vitest";
import { lastLines } from "../../src/cli/agent-logs.js";

describe("lastLines", () => {
  it("keeps the last n lines with their newlines", () => {
    expect(lastLines("a\nb\nc\n", 2)).toBe("b\nc\n");
    expect(lastLines("a\nb\nc\n", 1)).toBe("c\n");
    expect(lastLines("a\nb\nc", 1)).toBe("c");
    expect(lastLines("a\nb\nc", 2)).toBe("b\nc");
  });

  it("gives everything when there are fewer lines, nothing for 0", () => {
    expect(lastLines("a\nb\n", 5)).toBe("a\nb\n");
    expect(lastLines("a\nb\n", 2)).toBe("a\nb\n");
    expect(lastLines("", 3)).toBe("");
    expect(lastLines("a\nb\n", 0)).toBe("");
    expect(lastLines("\n\n", 1)).toBe("\n");
  });
});
