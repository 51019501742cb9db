import { describe, expect, it } from "vitest";
import { inferCapabilities, mergeCapabilities } from "../../src/core/tasks/capabilities.js";

describe("inferCapabilities", () => {
  it.each([
    ["review", "code-review"],
    ["code", "code-review"],
    ["test", "testing"],
    ["refactor", "refactoring"],
    ["improve", "refactoring"],
    ["write", "code-generation"],
    ["create", "code-generation"],
    ["implement", "code-generation"],
    ["debug", "debugging"],
    ["fix", "debugging"],
  ])("the word %s implies %s", (word, capability) => {
    expect(inferCapabilities(`please ${word} it`)).toEqual(["execute-directive", capability]);
  });

  it("always includes execute-directive", () => {
    expect(inferCapabilities("")).toEqual(["execute-directive"]);
    expect(inferCapabilities("summarise the meeting")).toEqual(["execute-directive"]);
  });

  it.each([
    ["Testing the parser", "testing"],
    ["RUN THE TESTS", "testing"],
    ["fixes for the crash", "debugging"],
    ["Writing docs", "code-generation"],
    ["created yesterday", "code-generation"],
    ["improving speed", "refactoring"],
    ["reviewed: yes", "code-review"],
    ["coding session", "code-review"],
    ["debugging/tracing", "debugging"],
    ["implementation notes", "code-generation"],
    ["re-test", "testing"],
  ])("matches inflected words at their start: %s", (goal, capability) => {
    expect(inferCapabilities(goal)).toContain(capability);
  });

  it.each(["the latest release", "add a prefix", "decode the payload", "recreate nothing", "contest entry"])(
    "ignores a keyword inside a word: %s",
    (goal) => {
      expect(inferCapabilities(goal)).toEqual(["execute-directive"]);
    },
  );

  it("reports several capabilities once each, in a fixed order", () => {
    expect(inferCapabilities("Fix the bug, write a test, then test and review the code")).toEqual([
      "execute-directive",
      "code-review",
      "testing",
      "code-generation",
      "debugging",
    ]);
  });
});

describe("mergeCapabilities", () => {
  it("keeps existing ones first and adds only new ones", () => {
    expect(mergeCapabilities(["search", "testing"], ["execute-directive", "testing", "debugging"])).toEqual([
      "search",
      "testing",
      "execute-directive",
      "debugging",
    ]);
  });
});
