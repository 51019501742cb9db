/**
 * `agentorch agents …`: register, list, inspect, start, stop and remove agents, read
 * their output, and watch their status changes live (AgentOrchestratorService).
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import {
  AgentConfigSchema,
  AgentSchema,
  AgentStatus,
  IdleAction,
  LifecycleLimitsSchema,
  ResourcesSchema,
  SandboxPolicy,
  WorkspaceConfigSchema,
} from "../../gen/agentorch/v1/agent_pb.js";
import type { Agent, AgentConfig } from "../../gen/agentorch/v1/agent_pb.js";
import { EventType } from "../../gen/agentorch/v1/events_pb.js";
import {
  AgentEventSchema,
  ListAgentsResponseSchema,
  RemoveAgentResponseSchema,
} from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { addLogsCommand } from "./agent-logs.js";
import { agentEventLine, printAgent, printAgentTable, statusName } from "./agent-view.js";
import { acceptsTrailingArgs, contextOf, trailingArgs } from "./context.js";
import type { Ctx } from "./context.js";
import { resolveAgentId } from "./resolve.js";
import { usageError } from "./errors.js";
import { paintState, printJson, printJsonLine, shortId } from "./output.js";
import { collect, parseBytes, parseCount, parseDecimal, parseDuration, parseEnum, parseEnv, readMessageFile } from "./parse.js";

interface RegisterOptions {
  file?: string;
  image?: string;
  name?: string;
  env?: string[];
  network?: boolean;
  memory?: string;
  cpus?: string;
  pids?: string;
  maxOutput?: string;
  maxIdle?: string;
  maxLifetime?: string;
  restartOnCrash?: boolean;
  maxRestarts?: string;
  idleAction?: string;
  workspaceMount?: string;
  readOnlyWorkspace?: boolean;
  noexecWorkspace?: boolean;
  disk?: string;
  ifNotExists?: boolean;
}

/** Builds the AgentConfig of `agents register` from -f and the flags (flags win over the file). */
export function agentConfigFrom(id: string | undefined, o: RegisterOptions, command: string[]): AgentConfig {
  const config = o.file !== undefined ? readMessageFile("-f", AgentConfigSchema, o.file) : create(AgentConfigSchema);
  if (id !== undefined) config.agentId = id;
  if (o.image !== undefined) config.image = o.image;
  if (o.name !== undefined) config.name = o.name;
  if (command.length > 0) config.command = command;
  if (o.env !== undefined) config.env = { ...config.env, ...parseEnv("--env", o.env) };
  if (o.network) config.policy = SandboxPolicy.CONTAINER_DIRECT;
  const res = (config.resources ??= create(ResourcesSchema));
  if (o.memory !== undefined) res.memoryBytes = parseBytes("--memory", o.memory);
  if (o.cpus !== undefined) res.cpus = parseDecimal("--cpus", o.cpus);
  if (o.pids !== undefined) res.pidsLimit = BigInt(parseCount("--pids", o.pids));
  if (o.maxOutput !== undefined) res.maxOutputBytes = parseBytes("--max-output", o.maxOutput);
  if (o.disk !== undefined) res.diskBytes = parseBytes("--disk", o.disk);
  const life = (config.lifecycle ??= create(LifecycleLimitsSchema));
  if (o.maxIdle !== undefined) life.maxIdle = parseDuration("--max-idle", o.maxIdle);
  if (o.maxLifetime !== undefined) life.maxLifetime = parseDuration("--max-lifetime", o.maxLifetime);
  if (o.restartOnCrash) life.restartOnCrash = true;
  if (o.maxRestarts !== undefined) life.maxRestarts = parseCount("--max-restarts", o.maxRestarts);
  if (o.idleAction !== undefined) life.idleAction = parseEnum("--idle-action", IdleAction, o.idleAction);
  if (o.workspaceMount !== undefined || o.readOnlyWorkspace || o.noexecWorkspace) {
    const ws = (config.workspace ??= create(WorkspaceConfigSchema));
    if (o.workspaceMount !== undefined) ws.mountPoint = o.workspaceMount;
    if (o.readOnlyWorkspace) ws.readOnly = true;
    if (o.noexecWorkspace) ws.noexec = true;
  }
  if (config.agentId === "") throw usageError("agents register: give the agent's id (agents register <id> …) or an agentId in -f");
  if (config.image === "") throw usageError("agents register: --image is required (or an image in -f)");
  return config;
}

/** Adds `agents` and its subcommands to the root. */
export function addAgentsCommands(root: Command): void {
  const agents = root
    .command("agents")
    .alias("agent")
    .description("register, run and inspect agents (each runs as one hardened container)");

  agents
    .command("ls")
    .alias("list")
    .description("list agents, ordered by id")
    .option("--status <status>", "only agents in this status: idle, starting, running, stopping, failed, terminated")
    .action(async (o: { status?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const status = o.status === undefined ? AgentStatus.UNSPECIFIED : parseEnum("--status", AgentStatus, o.status);
      const all = create(ListAgentsResponseSchema);
      let pageToken = "";
      do {
        const page = await ctx.clients.agents.listAgents({ pageSize: 1000, pageToken, status }, ctx.unary);
        if (pageToken === "") all.revision = page.revision;
        all.agents.push(...page.agents);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      if (ctx.json) return printJson(ListAgentsResponseSchema, all);
      if (all.agents.length === 0) {
        process.stdout.write(o.status ? `no ${o.status.toLowerCase()} agents\n` : "no agents: register one with `agentorch agents register <id> --image IMAGE -- CMD…`\n");
        return;
      }
      printAgentTable(all.agents, Date.now(), ctx.wide);
    });

  agents
    .command("get")
    .alias("show")
    .description("show one agent in detail")
    .argument("<id>", "the agent's id (or a unique prefix of it)")
    .action(async (text: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveAgentId(ctx, text);
      const { agent } = await ctx.clients.agents.getAgent({ agentId: id }, ctx.unary);
      if (!agent) throw new Error("the service answered without an agent");
      if (ctx.json) return printJson(AgentSchema, agent);
      printAgent(agent);
    });

  const register = agents
    .command("register")
    .description("register an agent (status IDLE); it runs once started")
    .argument("[id]", "the agent's id: 1-64 letters, digits and '-' (optional with -f)")
    .option("-f, --file <file>", "a whole AgentConfig as JSON or YAML (proto JSON names; - for stdin); flags override it")
    .option("--image <image>", "the Docker image (must be present on the engine; never pulled)")
    .option("--name <name>", "a human-readable name (default: the id)")
    .option("--env <NAME=VALUE>", "an environment variable (repeatable)", collect)
    .option("--network", "give the container a bridge network (policy CONTAINER_DIRECT); default: no network")
    .option("--memory <size>", "memory limit, e.g. 256m, 1g (default 512MiB)")
    .option("--cpus <n>", "CPU limit in cores, e.g. 0.5 (default: the admin's default, 1 core unless changed)")
    .option("--pids <n>", "process limit (default 256)")
    .option("--max-output <size>", "how much output is kept, e.g. 1m (default 256KiB)")
    .option("--max-idle <duration>", "stop the agent after this long without activity, e.g. 10m; 0: never (default 1h)")
    .option("--max-lifetime <duration>", "terminate the agent this long after it started, e.g. 1h (default: no limit)")
    .option("--idle-action <stop|pause>", "what --max-idle does: stop (remove the container) or pause (freeze it; resumed in ~10 ms by start, activity, a message or a task)")
    .option("--restart-on-crash", "restart the container, with backoff, when it exits non-zero")
    .option("--max-restarts <n>", "crash restarts in a row allowed (default 3)")
    .option("--workspace-mount <path>", "where the workspace appears in the container (default /workspace)")
    .option("--read-only-workspace", "mount the workspace read-only")
    .option("--noexec-workspace", "nothing in the workspace may be executed (needs the service to run as root)")
    .option("--disk <size>", "workspace size limit, e.g. 1g: writes beyond it fail with ENOSPC (needs the service to run as root)")
    .option("--if-not-exists", "for scripts: when an agent with this id exists, leave it as it is and exit 0 (instead of 4)")
    .addHelpText(
      "after",
      `
The container's command goes after \`--\` (the image's default when none is given).

Examples:
  agentorch agents register coder --image agentorch/busybox:test --memory 256m --max-idle 10m -- sh -c 'echo hi; sleep 300'
  agentorch agents register -f coder.yaml
  agentorch agents register coder -f base.yaml --env MODEL=small`,
    )
    .action(async (id: string | undefined, o: RegisterOptions, cmd: Command) => {
      const config = agentConfigFrom(id, o, trailingArgs());
      const ctx = contextOf(cmd);
      let agent: Agent | undefined;
      try {
        agent = (await ctx.clients.agents.registerAgent({ agent: config }, ctx.unary)).agent;
      } catch (err) {
        if (!o.ifNotExists || !(err instanceof ConnectError) || err.code !== Code.AlreadyExists) throw err;
        const { agent: existing } = await ctx.clients.agents.getAgent({ agentId: config.agentId }, ctx.unary);
        if (!existing) throw err;
        if (ctx.json) return printJson(AgentSchema, existing);
        process.stdout.write(`agent ${existing.agentId} already exists (${paintState(statusName(existing.status))}, image ${existing.config?.image ?? "-"}); left as it is\n`);
        return;
      }
      if (!agent) throw new Error("the service answered without an agent");
      if (ctx.json) return printJson(AgentSchema, agent);
      process.stdout.write(`registered agent ${agent.agentId} (${paintState(statusName(agent.status))}); start it with \`agentorch agents start ${agent.agentId}\`\n`);
    });
  acceptsTrailingArgs(register);

  agents
    .command("start")
    .description("start the agent's container (IDLE or FAILED -> RUNNING; PAUSED is resumed); an agent already RUNNING is left as it is (exit 0)")
    .argument("<id>", "the agent's id (or a unique prefix of it)")
    .option("--if-needed", "for scripts: also exit 0 when the agent is already STARTING")
    .action(async (text: string, o: { ifNeeded?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveAgentId(ctx, text);
      const done = [AgentStatus.RUNNING, ...(o.ifNeeded ? [AgentStatus.STARTING] : [])];
      const agent = await alreadyOr(ctx, id, done, async () => (await ctx.clients.agents.startAgent({ agentId: id }, ctx.unary)).agent);
      printAgentChange(ctx.json, agent.agent, agent.already);
    });

  agents
    .command("stop")
    .description("kill the agent's container (RUNNING -> IDLE); it can be started again")
    .argument("<id>", "the agent's id (or a unique prefix of it)")
    .option("--if-needed", "for scripts: exit 0 when the agent is not running (IDLE, STOPPING, FAILED or TERMINATED) instead of 4")
    .action(async (text: string, o: { ifNeeded?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveAgentId(ctx, text);
      const done = o.ifNeeded ? [AgentStatus.IDLE, AgentStatus.STOPPING, AgentStatus.FAILED, AgentStatus.TERMINATED] : [];
      const agent = await alreadyOr(ctx, id, done, async () => (await ctx.clients.agents.stopAgent({ agentId: id }, ctx.unary)).agent);
      printAgentChange(ctx.json, agent.agent, agent.already);
    });

  agents
    .command("rm")
    .alias("remove")
    .description("kill any container and delete the agent (its workspace is kept unless --delete-workspace)")
    .argument("<id>", "the agent's id (or a unique prefix of it)")
    .option("--delete-workspace", "also delete the agent's workspace directory")
    .action(async (text: string, o: { deleteWorkspace?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveAgentId(ctx, text);
      const res = await ctx.clients.agents.removeAgent({ agentId: id, deleteWorkspace: o.deleteWorkspace === true }, ctx.unary);
      if (ctx.json) return printJson(RemoveAgentResponseSchema, res);
      process.stdout.write(`removed agent ${id}${o.deleteWorkspace ? " and its workspace" : ""}\n`);
    });

  addLogsCommand(agents);

  agents
    .command("watch")
    .description("show agents' status changes live (the current state first), until Ctrl-C")
    .argument("[ids...]", "only these agents (default: every agent)")
    .option("--resume-after <revision>", "replay the changes after this event-log revision instead of the current state")
    .addHelpText("after", "\nWith -o json: one AgentEvent per line (ADDED, CHANGED, REMOVED, and BOOKMARK with the revision to resume after).")
    .action(async (texts: string[], o: { resumeAfter?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const ids: string[] = [];
      for (const t of texts) ids.push(await resolveAgentId(ctx, t));
      const resume = o.resumeAfter === undefined ? undefined : BigInt(parseCount("--resume-after", o.resumeAfter));
      const known = new Map<string, AgentStatus>();
      const summary = () => {
        const running = [...known.values()].filter((s) => s === AgentStatus.RUNNING).length;
        return `watching ${known.size} agent${known.size === 1 ? "" : "s"}, ${running} running · Ctrl-C to stop`;
      };
      ctx.status.set("connecting…");
      const stream = ctx.clients.agents.watchAgents({
        agentIds: ids,
        sendInitialState: resume === undefined,
        resumeAfterRevision: resume ?? 0n,
      });
      for await (const { event } of stream) {
        if (!event) continue;
        if (ctx.json) {
          printJsonLine(AgentEventSchema, event);
          continue;
        }
        if (event.agent) {
          if (event.type === EventType.REMOVED) known.delete(event.agent.agentId);
          else known.set(event.agent.agentId, event.agent.status);
        }
        const line = agentEventLine(event);
        if (line !== undefined) ctx.status.log(line);
        ctx.status.set(summary);
      }
      ctx.status.clear();
    });
}

/**
 * Runs change (a start or stop); when the service refuses it as FAILED_PRECONDITION
 * because the agent is already in one of the done states, answers that agent instead,
 * marked already: scripts can run the command again without failing.
 */
async function alreadyOr(
  ctx: Ctx,
  agentId: string,
  done: readonly AgentStatus[],
  change: () => Promise<Agent | undefined>,
): Promise<{ agent: Agent | undefined; already: boolean }> {
  try {
    return { agent: await change(), already: false };
  } catch (err) {
    if (done.length === 0 || !(err instanceof ConnectError) || err.code !== Code.FailedPrecondition) throw err;
    const { agent } = await ctx.clients.agents.getAgent({ agentId }, ctx.unary);
    if (!agent || !done.includes(agent.status)) throw err;
    return { agent, already: true };
  }
}

function printAgentChange(json: boolean, agent: Agent | undefined, already = false): void {
  if (!agent) throw new Error("the service answered without an agent");
  if (json) return printJson(AgentSchema, agent);
  const container = agent.containerId !== "" && agent.status === AgentStatus.RUNNING ? ` (container ${shortId(agent.containerId)})` : "";
  if (already) {
    process.stdout.write(`agent ${agent.agentId} is already ${paintState(statusName(agent.status))}${container}; nothing to do\n`);
    return;
  }
  process.stdout.write(`agent ${agent.agentId} ${paintState(statusName(agent.status))}${container}${agent.statusReason ? `: ${agent.statusReason}` : ""}\n`);
}
