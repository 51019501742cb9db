/**
 * `agentorch tasks …`: submit directives to agents (or to throwaway agents made from an
 * image), list and inspect tasks, cancel and retry them, and follow one to its outcome,
 * which becomes the exit code (LifecycleService).
 */
import { create } from "@bufbuild/protobuf";
import type { Command } from "commander";
import { ResourcesSchema, SandboxPolicy } from "../../gen/agentorch/v1/agent_pb.js";
import { ListTasksResponseSchema, SubmitTaskRequestSchema } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import type { SubmitTaskRequest } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { DirectiveSchema, TaskEventSchema, TaskPriority, TaskSchema, TaskState, TaskTemplateSchema } from "../../gen/agentorch/v1/task_pb.js";
import type { Task } from "../../gen/agentorch/v1/task_pb.js";
import { EventType } from "../../gen/agentorch/v1/events_pb.js";
import type { Ctx } from "./context.js";
import { acceptsTrailingArgs, contextOf, trailingArgs } from "./context.js";
import { usageError } from "./errors.js";
import { resolveAgentId, resolveTaskId } from "./resolve.js";
import { paintState, printJson, printJsonLine } from "./output.js";
import { collect, parseBytes, parseCount, parseDecimal, parseDuration, parseEnum, parseEnv } from "./parse.js";
import { isTerminalState, printTask, printTaskOutput, printTaskTable, stateName, taskExitCode, taskRunTime, taskStateLine } from "./task-view.js";

const OUTCOME_HELP = `
Exit codes when following a task: 0 COMPLETED, 10 FAILED (also a timeout), 11 CANCELED, 12 REJECTED;
other codes are errors of the command itself (see \`agentorch --help\`).`;

interface SubmitOptions {
  constraint?: string[];
  criterion?: string[];
  originalRequest?: string;
  agent?: string;
  image?: string;
  env?: string[];
  network?: boolean;
  memory?: string;
  cpus?: string;
  pids?: string;
  priority?: string;
  timeout?: string;
  wait?: boolean;
}

/** Builds the SubmitTask request from the goal, the flags and the command after `--`. */
export function submitRequestFrom(goal: string, o: SubmitOptions, command: string[]): SubmitTaskRequest {
  if ((o.agent === undefined) === (o.image === undefined)) {
    throw usageError("tasks submit: give either --agent ID (a registered agent) or --image IMAGE [-- CMD…] (a throwaway agent)");
  }
  const directive = create(DirectiveSchema, {
    goal,
    constraints: o.constraint ?? [],
    acceptanceCriteria: o.criterion ?? [],
    originalRequest: o.originalRequest ?? "",
  });
  const req = create(SubmitTaskRequestSchema, {
    directive,
    priority: o.priority === undefined ? TaskPriority.UNSPECIFIED : parseEnum("--priority", TaskPriority, o.priority),
  });
  if (o.timeout !== undefined) req.timeout = parseDuration("--timeout", o.timeout);
  if (o.agent !== undefined) {
    const templateOnly = ["env", "network", "memory", "cpus", "pids"].filter((k) => o[k as keyof SubmitOptions] !== undefined);
    if (command.length > 0) throw usageError("tasks submit: a command after -- goes with --image; an --agent runs its own command");
    if (templateOnly.length > 0) throw usageError(`tasks submit: --${templateOnly[0]} goes with --image; an --agent keeps its own settings`);
    req.target = { case: "agentId", value: o.agent };
    return req;
  }
  const resources = create(ResourcesSchema);
  if (o.memory !== undefined) resources.memoryBytes = parseBytes("--memory", o.memory);
  if (o.cpus !== undefined) resources.cpus = parseDecimal("--cpus", o.cpus);
  if (o.pids !== undefined) resources.pidsLimit = BigInt(parseCount("--pids", o.pids));
  const template = create(TaskTemplateSchema, {
    image: o.image,
    command,
    env: parseEnv("--env", o.env ?? []),
    policy: o.network ? SandboxPolicy.CONTAINER_DIRECT : SandboxPolicy.UNSPECIFIED,
    resources,
  });
  req.target = { case: "template", value: template };
  return req;
}

/**
 * Follows a task until it is terminal: state changes as lines (or JSON lines), a spinner
 * with the elapsed time on a terminal, the output at the end. Returns the outcome's exit code.
 */
async function followTask(ctx: Ctx, taskId: string): Promise<number> {
  let last: Task | undefined;
  ctx.status.set(() =>
    last
      ? `${stateName(last.state)}${last.startedAt ? ` for ${taskRunTime(last)}` : ""} · Ctrl-C stops watching (the task goes on)`
      : "connecting…",
  );
  for await (const { task } of ctx.clients.lifecycle.watchTask({ taskId })) {
    if (!task) continue;
    const previous = last;
    last = task;
    if (ctx.json) printJsonLine(TaskSchema, task);
    else if (previous === undefined || previous.state !== task.state) ctx.status.log(taskStateLine(task));
  }
  ctx.status.clear();
  if (!last || !isTerminalState(last.state)) {
    throw new Error(`the watch of task ${taskId} ended before the task did: follow it again with \`agentorch tasks watch ${taskId}\``);
  }
  if (!ctx.json) printTaskOutput(last);
  return taskExitCode(last);
}

/** Adds `tasks` and its subcommands to the root. */
export function addTasksCommands(root: Command): void {
  const tasks = root
    .command("tasks")
    .alias("task")
    .description("run directives on agents under the priority scheduler, and follow them to their outcome");

  const submit = tasks
    .command("submit")
    .description("queue a directive for a registered agent (--agent) or a throwaway agent made from an image (--image)")
    .argument("<goal>", "what the agent is to achieve (reaches the container as AGENTORCH_GOAL)")
    .option("--constraint <text>", "a rule the agent must follow (repeatable)", collect)
    .option("--criterion <text>", "an acceptance criterion (repeatable)", collect)
    .option("--original-request <text>", "the request the goal was derived from, verbatim")
    .option("--agent <id>", "run on this registered agent (IDLE or FAILED, no other task)")
    .option("--image <image>", "run in a throwaway agent from this image; its command goes after --")
    .option("--env <NAME=VALUE>", "environment for the throwaway agent (repeatable)", collect)
    .option("--network", "give the throwaway agent a bridge network (default: none)")
    .option("--memory <size>", "memory limit of the throwaway agent, e.g. 256m")
    .option("--cpus <n>", "CPU limit of the throwaway agent, e.g. 0.5")
    .option("--pids <n>", "process limit of the throwaway agent")
    .option("--priority <priority>", "low, normal, high or critical (default normal)")
    .option("--timeout <duration>", "the task's time limit, e.g. 30s, 10m (default and cap: the service's max execution time)")
    .option("--wait", "follow the task to its end and exit with its outcome")
    .addHelpText(
      "after",
      `${OUTCOME_HELP}

Examples:
  agentorch tasks submit "summarise the repo" --agent coder --constraint "no network" --priority high --wait
  agentorch tasks submit "say ok" --image agentorch/busybox:test --timeout 30s --wait -- sh -c 'echo ok'`,
    )
    .action(async (goal: string, o: SubmitOptions, cmd: Command) => {
      const req = submitRequestFrom(goal, o, trailingArgs());
      const ctx = contextOf(cmd);
      if (req.target.case === "agentId") req.target.value = await resolveAgentId(ctx, req.target.value);
      const { task } = await ctx.clients.lifecycle.submitTask(req, ctx.unary);
      if (!task) throw new Error("the service answered without a task");
      if (o.wait) {
        process.exitCode = await followTask(ctx, task.taskId);
        return;
      }
      if (ctx.json) return printJson(TaskSchema, task);
      process.stdout.write(`submitted task ${task.taskId} (${paintState(stateName(task.state))}); follow it with \`agentorch tasks watch ${task.taskId}\`\n`);
    });
  acceptsTrailingArgs(submit);

  tasks
    .command("ls")
    .alias("list")
    .description("list tasks, newest first")
    .option("--state <state>", "only tasks in this state: submitted, working, completed, failed, canceled, rejected")
    .option("--agent <id>", "only tasks of this agent")
    .option("--limit <n>", "only the newest N tasks")
    .option("--oldest-first", "oldest first (submission order)")
    .addHelpText("after", "\nWith -o json or yaml: a ListTasksResponse with the tasks in the order shown.")
    .action(async (o: { state?: string; agent?: string; limit?: string; oldestFirst?: boolean }, cmd: Command) => {
      const state = o.state === undefined ? TaskState.UNSPECIFIED : parseEnum("--state", TaskState, o.state);
      const limit = o.limit === undefined ? undefined : parseCount("--limit", o.limit);
      const ctx = contextOf(cmd);
      const agentId = o.agent === undefined ? "" : await resolveAgentId(ctx, o.agent);
      const all = create(ListTasksResponseSchema);
      let pageToken = "";
      // The service pages in submission order: read every page, then take the newest.
      do {
        const page = await ctx.clients.lifecycle.listTasks({ pageSize: 1000, pageToken, state, agentId }, ctx.unary);
        if (pageToken === "") all.revision = page.revision;
        all.tasks.push(...page.tasks);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      if (limit !== undefined) all.tasks = all.tasks.slice(Math.max(0, all.tasks.length - limit));
      if (!o.oldestFirst) all.tasks.reverse();
      if (ctx.json) return printJson(ListTasksResponseSchema, all);
      if (all.tasks.length === 0) {
        process.stdout.write(o.state ? `no ${o.state.toLowerCase()} tasks\n` : "no tasks\n");
        return;
      }
      printTaskTable(all.tasks, Date.now(), ctx.wide);
    });

  tasks
    .command("get")
    .alias("show")
    .description("show one task in detail, with its output")
    .argument("<task-id>", "the task's id (or a unique prefix of it)")
    .action(async (text: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const taskId = await resolveTaskId(ctx, text);
      const { task } = await ctx.clients.lifecycle.getTask({ taskId }, ctx.unary);
      if (!task) throw new Error("the service answered without a task");
      if (ctx.json) return printJson(TaskSchema, task);
      printTask(task);
    });

  tasks
    .command("cancel")
    .description("cancel a task: a waiting one never starts, a running one has its container killed")
    .argument("<task-id>", "the task's id (or a unique prefix of it)")
    .action(async (text: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const taskId = await resolveTaskId(ctx, text);
      const { task } = await ctx.clients.lifecycle.cancelTask({ taskId }, ctx.unary);
      if (!task) throw new Error("the service answered without a task");
      if (ctx.json) return printJson(TaskSchema, task);
      process.stdout.write(`task ${task.taskId} ${paintState(stateName(task.state))}\n`);
    });

  tasks
    .command("retry")
    .description("submit a new attempt of a FAILED or CANCELED task, with the previous output and unmet criteria as feedback")
    .argument("<task-id>", "the task to retry")
    .option("--gap <text>", "an acceptance criterion the previous attempt did not meet (repeatable; default: all of them)", collect)
    .option("--wait", "follow the new attempt to its end and exit with its outcome")
    .addHelpText("after", OUTCOME_HELP)
    .action(async (text: string, o: { gap?: string[]; wait?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const taskId = await resolveTaskId(ctx, text);
      const { task } = await ctx.clients.lifecycle.retryTask({ taskId, gaps: o.gap ?? [] }, ctx.unary);
      if (!task) throw new Error("the service answered without a task");
      if (o.wait) {
        process.exitCode = await followTask(ctx, task.taskId);
        return;
      }
      if (ctx.json) return printJson(TaskSchema, task);
      process.stdout.write(`submitted task ${task.taskId} (attempt ${task.attempt}, ${paintState(stateName(task.state))})\n`);
    });

  tasks
    .command("watch")
    .description("follow one task to its end (exit code: its outcome), or, without an id, every task change until Ctrl-C")
    .argument("[task-id]", "the task to follow")
    .option("--agent <id>", "without a task id: only tasks of this agent")
    .addHelpText("after", `${OUTCOME_HELP}\nWith -o json: one Task per line (one TaskEvent per line without a task id).`)
    .action(async (taskId: string | undefined, o: { agent?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      if (taskId !== undefined) {
        process.exitCode = await followTask(ctx, await resolveTaskId(ctx, taskId));
        return;
      }
      const active = new Map<string, TaskState>();
      ctx.status.set("connecting…");
      for await (const { event } of ctx.clients.lifecycle.watchTasks({ agentId: await resolveAgentId(ctx, o.agent ?? ""), sendInitialState: true })) {
        if (!event) continue;
        if (ctx.json) {
          printJsonLine(TaskEventSchema, event);
          continue;
        }
        const t = event.task;
        if (event.type !== EventType.BOOKMARK && t) {
          if (isTerminalState(t.state) || event.type === EventType.REMOVED) active.delete(t.taskId);
          else active.set(t.taskId, t.state);
          ctx.status.log(taskStateLine(t));
        }
        ctx.status.set(() => {
          const working = [...active.values()].filter((s) => s === TaskState.WORKING).length;
          return `${working} working, ${active.size - working} waiting · Ctrl-C to stop`;
        });
      }
      ctx.status.clear();
    });
}
