/**
 * The CLI's flag and file parsing (src/cli/parse.ts): what a person types becomes the
 * exact proto value, and anything else is a usage error (exit 2) that names the flag
 * and the value, never a silently different number.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AgentConfigSchema, AgentStatus, SandboxPolicy } from "../../gen/agentorch/v1/agent_pb.js";
import { TaskPriority } from "../../gen/agentorch/v1/task_pb.js";
import { CliError } from "../../src/cli/errors.js";
import {
  collect,
  parseBytes,
  parseCount,
  parseDecimal,
  parseDuration,
  parseEnum,
  parseEnv,
  parseSeconds,
  readMessageFile,
} from "../../src/cli/parse.js";

/** The usage error fn throws; fails when it throws nothing or something else. */
function usage(fn: () => unknown): CliError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CliError) return err;
    throw err;
  }
  throw new Error("expected a usage error, nothing was thrown");
}

function expectUsage(fn: () => unknown, ...mentions: string[]): void {
  const err = usage(fn);
  expect(err.exitCode).toBe(2);
  for (const m of mentions) expect(err.message).toContain(m);
}

describe("durations", () => {
  it("reads units and sums compound durations", () => {
    expect(parseSeconds("--t", "0")).toBe(0);
    expect(parseSeconds("--t", "30s")).toBe(30);
    expect(parseSeconds("--t", "10m")).toBe(600);
    expect(parseSeconds("--t", "1h30m")).toBe(5400);
    expect(parseSeconds("--t", "1.5h")).toBe(5400);
    expect(parseSeconds("--t", "2d")).toBe(172_800);
    expect(parseSeconds("--t", " 500ms ")).toBe(0.5);
  });

  it("refuses anything else, naming the flag and the value", () => {
    for (const text of ["", "10", "10x", "m", "-5s", "1h 30m", "10m!", "1e3s"]) expectUsage(() => parseSeconds("--max-idle", text), "--max-idle", text);
  });

  it("gives an exact Duration, whole seconds and nanos apart", () => {
    expect(parseDuration("--t", "1h30m")).toMatchObject({ seconds: 5400n, nanos: 0 });
    expect(parseDuration("--t", "1500ms")).toMatchObject({ seconds: 1n, nanos: 500_000_000 });
    expect(parseDuration("--t", "0")).toMatchObject({ seconds: 0n, nanos: 0 });
  });
});

describe("sizes", () => {
  it("reads Docker's units, powers of 1024, any case", () => {
    expect(parseBytes("--m", "65536")).toBe(65536n);
    expect(parseBytes("--m", "256m")).toBe(256n * 1024n * 1024n);
    expect(parseBytes("--m", "512MiB")).toBe(512n * 1024n * 1024n);
    expect(parseBytes("--m", "1g")).toBe(1024n ** 3n);
    expect(parseBytes("--m", "1.5k")).toBe(1536n);
    expect(parseBytes("--m", "10 KB")).toBe(10_240n);
  });

  it("refuses unknown units and non-numbers", () => {
    for (const text of ["", "m", "1t", "-1m", "12mbs", "1,5m"]) expectUsage(() => parseBytes("--memory", text), "--memory", text);
  });
});

describe("numbers", () => {
  it("takes whole numbers for counts and decimals for --cpus", () => {
    expect(parseCount("--n", "0")).toBe(0);
    expect(parseCount("--n", "42")).toBe(42);
    expect(parseDecimal("--cpus", "0.5")).toBe(0.5);
    expect(parseDecimal("--cpus", "2")).toBe(2);
  });

  it("refuses signs, fractions where a count is meant, and words", () => {
    for (const text of ["-1", "1.5", "ten", ""]) expectUsage(() => parseCount("--max-restarts", text), "--max-restarts");
    for (const text of ["-0.5", ".5", "half", "1e2"]) expectUsage(() => parseDecimal("--cpus", text), "--cpus");
  });
});

describe("env", () => {
  it("splits at the first '=' and keeps empty values", () => {
    expect(parseEnv("--env", ["A=1", "B=x=y", "C="])).toEqual({ A: "1", B: "x=y", C: "" });
  });

  it("refuses an entry with no name or no '='", () => {
    expectUsage(() => parseEnv("--env", ["A=1", "=v"]), "--env", "=v");
    expectUsage(() => parseEnv("--env", ["NAME"]), "--env", "NAME", "NAME=VALUE");
  });

  it("collects a repeated flag in order", () => {
    expect(collect("b", collect("a", undefined))).toEqual(["a", "b"]);
  });
});

describe("enums", () => {
  it("takes lower-case names with '-' for '_', and never UNSPECIFIED", () => {
    expect(parseEnum("--priority", TaskPriority, "high")).toBe(TaskPriority.HIGH);
    expect(parseEnum("--policy", SandboxPolicy, "container-direct")).toBe(SandboxPolicy.CONTAINER_DIRECT);
    expect(parseEnum("--status", AgentStatus, " RUNNING ")).toBe(AgentStatus.RUNNING);
    expectUsage(() => parseEnum("--priority", TaskPriority, "unspecified"), "--priority");
  });

  it("lists the accepted words when refusing one", () => {
    expectUsage(() => parseEnum("--priority", TaskPriority, "urgent"), "--priority urgent", "low, normal, high, critical");
    expectUsage(() => parseEnum("--priority", TaskPriority, "2"), "--priority");
  });
});

describe("readMessageFile", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "agentorch-cli-parse-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it("reads YAML with snake_case names, enum names, human durations and sizes", () => {
    const p = file(
      "agent.yaml",
      ["agent_id: a-1", "image: busybox", "policy: SANDBOX_POLICY_CONTAINER_DIRECT", "resources:", "  memory_bytes: 256m", "lifecycle:", "  max_idle: 1h30m", "  maxLifetime: 90", ""].join("\n"),
    );
    const config = readMessageFile("--file", AgentConfigSchema, p);
    expect(config).toMatchObject({ agentId: "a-1", image: "busybox", policy: SandboxPolicy.CONTAINER_DIRECT });
    expect(config.resources?.memoryBytes).toBe(256n * 1024n * 1024n);
    expect(config.lifecycle?.maxIdle).toMatchObject({ seconds: 5400n, nanos: 0 });
    expect(config.lifecycle?.maxLifetime).toMatchObject({ seconds: 90n });
  });

  it("reads proto JSON as it is", () => {
    const p = file("agent.json", JSON.stringify({ agentId: "a-2", lifecycle: { maxIdle: "600s" }, resources: { memoryBytes: "1024" } }));
    const config = readMessageFile("--file", AgentConfigSchema, p);
    expect(config.agentId).toBe("a-2");
    expect(config.lifecycle?.maxIdle).toMatchObject({ seconds: 600n });
    expect(config.resources?.memoryBytes).toBe(1024n);
  });

  it("refuses, naming the flag and the file: a missing file, bad syntax, a non-object, an unknown field, a bad duration", () => {
    expectUsage(() => readMessageFile("--file", AgentConfigSchema, path.join(dir, "nope.yaml")), "--file", "nope.yaml", "cannot read");
    expectUsage(() => readMessageFile("--file", AgentConfigSchema, file("bad.yaml", "a: [1\n")), "--file", "not valid JSON or YAML");
    expectUsage(() => readMessageFile("--file", AgentConfigSchema, file("list.yaml", "- 1\n")), "expected an object", "agentorch.v1.AgentConfig");
    expectUsage(() => readMessageFile("--file", AgentConfigSchema, file("unknown.yaml", "colour: red\n")), "not a valid agentorch.v1.AgentConfig");
    expectUsage(() => readMessageFile("--file", AgentConfigSchema, file("dur.yaml", "lifecycle:\n  max_idle: soon\n")), "max_idle", "soon");
  });
});
