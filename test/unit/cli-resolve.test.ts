/**
 * Id prefixes (src/cli/resolve.ts): an exact id always wins, a unique prefix names its id,
 * several matches are a usage error that lists them, and no match is left to the service
 * (which answers NOT_FOUND in its own words).
 */
import { describe, expect, it } from "vitest";
import { CliError } from "../../src/cli/errors.js";
import { matchId } from "../../src/cli/resolve.js";

const ids = ["coder", "coder-2", "copilot", "planner", "task-0a1b", "task-0a2c"];

describe("matchId", () => {
  it("takes an exact id even when it prefixes others, and a unique prefix", () => {
    expect(matchId("agent", "coder", ids)).toBe("coder");
    expect(matchId("agent", "coder-", ids)).toBe("coder-2");
    expect(matchId("agent", "p", ids)).toBe("planner");
    expect(matchId("task", "task-0a2", ids)).toBe("task-0a2c");
  });

  it("leaves an unknown id as typed", () => {
    expect(matchId("agent", "nope", ids)).toBe("nope");
  });

  it("refuses an ambiguous prefix with exit 2, naming the matches", () => {
    let err: unknown;
    try {
      matchId("agent", "co", ids);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(2);
    expect((err as CliError).message).toBe('agent id prefix "co" is ambiguous: it matches coder, coder-2, copilot; give more of the id');
    const many = Array.from({ length: 7 }, (_, i) => `a${i}`);
    expect(() => matchId("task", "a", many)).toThrow("a0, a1, a2, a3, a4, … (7 in all)");
  });
});
