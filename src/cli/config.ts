/**
 * `agentorch config get|set`: the task limits the service applies, read and changed live
 * without a restart (LifecycleService Get/UpdateLifecycleConfig).
 */
import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import { LifecycleConfigSchema } from "../../gen/agentorch/v1/task_pb.js";
import type { LifecycleConfig } from "../../gen/agentorch/v1/task_pb.js";
import { contextOf } from "./context.js";
import { usageError } from "./errors.js";
import { formatDuration, printJson, printTable } from "./output.js";
import { parseCount, parseDuration } from "./parse.js";

interface Setting {
  /** The update_mask path. */
  path: string;
  help: string;
  show(c: LifecycleConfig): string;
  apply(c: LifecycleConfig, value: string): void;
}

const SETTINGS: Record<string, Setting> = {
  "max-execution-time": {
    path: "max_execution_time",
    help: "the longest a task may run, e.g. 5m (1s-7d)",
    show: (c) => formatDuration(c.maxExecutionTime),
    apply: (c, v) => (c.maxExecutionTime = parseDuration("max-execution-time", v)),
  },
  "max-concurrent-tasks": {
    path: "max_concurrent_tasks",
    help: "tasks WORKING at once (1-1000)",
    show: (c) => String(c.maxConcurrentTasks),
    apply: (c, v) => (c.maxConcurrentTasks = parseCount("max-concurrent-tasks", v)),
  },
  "zombie-timeout": {
    path: "zombie_timeout",
    help: "a WORKING task older than this is failed as a zombie, e.g. 15m (at least max-execution-time)",
    show: (c) => formatDuration(c.zombieTimeout),
    apply: (c, v) => (c.zombieTimeout = parseDuration("zombie-timeout", v)),
  },
  "max-queued-tasks": {
    path: "max_queued_tasks",
    help: "tasks waiting at most; beyond it submits are refused (1-1000000)",
    show: (c) => String(c.maxQueuedTasks),
    apply: (c, v) => (c.maxQueuedTasks = parseCount("max-queued-tasks", v)),
  },
};

const KEYS_HELP = `
Keys:
${Object.entries(SETTINGS)
  .map(([k, s]) => `  ${k.padEnd(22)}${s.help}`)
  .join("\n")}`;

function settingKey(text: string): string {
  const key = text
    .trim()
    .replace(/([a-z])([A-Z])/g, "$1-$2")
    .replace(/_/g, "-")
    .toLowerCase();
  if (!(key in SETTINGS)) throw usageError(`unknown config key "${text}": expected one of ${Object.keys(SETTINGS).join(", ")}`);
  return key;
}

function printConfig(c: LifecycleConfig, json: boolean): void {
  if (json) return printJson(LifecycleConfigSchema, c);
  printTable(
    ["KEY", "VALUE"],
    Object.entries(SETTINGS).map(([k, s]) => [k, s.show(c)]),
  );
}

/** Parses `KEY=VALUE…` or `KEY VALUE` into (key, value) pairs. */
export function parseAssignments(words: readonly string[]): [string, string][] {
  if (words.length === 2 && !words[0]!.includes("=") && !words[1]!.includes("=")) return [[settingKey(words[0]!), words[1]!]];
  return words.map((w) => {
    const eq = w.indexOf("=");
    if (eq <= 0) throw usageError(`config set ${w}: expected KEY=VALUE (or KEY VALUE)`);
    return [settingKey(w.slice(0, eq)), w.slice(eq + 1)];
  });
}

/** Adds `config` and its subcommands to the root. */
export function addConfigCommands(root: Command): void {
  const config = root.command("config").description("the task limits in force; changed live, kept across restarts");

  config
    .command("get")
    .description("show the task limits (or one of them, bare, for scripts)")
    .argument("[key]", "only this key's value")
    .addHelpText("after", KEYS_HELP)
    .action(async (key: string | undefined, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const wanted = key === undefined ? undefined : settingKey(key);
      const { config: c } = await ctx.clients.lifecycle.getLifecycleConfig({}, ctx.unary);
      if (!c) throw new Error("the service answered without a config");
      if (wanted !== undefined && !ctx.json) {
        process.stdout.write(SETTINGS[wanted]!.show(c) + "\n");
        return;
      }
      printConfig(c, ctx.json);
    });

  config
    .command("set")
    .description("change task limits now, without a restart; prints the limits in force after the change")
    .argument("<assignments...>", "KEY=VALUE pairs (or one KEY VALUE)")
    .addHelpText("after", `${KEYS_HELP}\n\nExample:\n  agentorch config set max-concurrent-tasks=10 max-execution-time=10m`)
    .action(async (words: string[], _o: unknown, cmd: Command) => {
      const pairs = parseAssignments(words);
      const c = create(LifecycleConfigSchema);
      for (const [k, v] of pairs) SETTINGS[k]!.apply(c, v);
      const updateMask = create(FieldMaskSchema, { paths: [...new Set(pairs.map(([k]) => SETTINGS[k]!.path))] });
      const ctx = contextOf(cmd);
      const { config: after } = await ctx.clients.lifecycle.updateLifecycleConfig({ config: c, updateMask }, ctx.unary);
      if (!after) throw new Error("the service answered without a config");
      printConfig(after, ctx.json);
    });
}
