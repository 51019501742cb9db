/**
 * How agents look to a person: the `agents ls` table, the `agents get` fields, and the
 * one-line change that `agents watch` prints.
 */
import type { Agent } from "../../gen/agentorch/v1/agent_pb.js";
import { AgentStatus, IdleAction, SandboxPolicy } from "../../gen/agentorch/v1/agent_pb.js";
import type { AgentEvent } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { EventType } from "../../gen/agentorch/v1/events_pb.js";
import {
  absoluteAndRelative,
  colors,
  enumName,
  formatBytes,
  formatDuration,
  isZeroDuration,
  paintState,
  printFields,
  printTable,
  relativeTime,
  shellJoin,
  shortId,
  truncate,
} from "./output.js";

/** "IDLE", "RUNNING"… */
export function statusName(status: AgentStatus): string {
  return enumName(AgentStatus, status);
}

/** The status reason worth a table column: why an agent failed, ended or went idle again. */
function reasonShown(a: Agent): string {
  const telling = a.status === AgentStatus.FAILED || a.status === AgentStatus.TERMINATED || (a.status === AgentStatus.IDLE && a.startedAt !== undefined);
  return telling ? a.statusReason : "";
}

/**
 * Prints agents as a table: ID, STATUS, IMAGE, RESTARTS, STARTED, AGE, and REASON when any
 * has one. wide (-o wide) adds CONTAINER, NETWORK, MEMORY and COMMAND, and always shows REASON.
 */
export function printAgentTable(agents: readonly Agent[], now = Date.now(), wide = false): void {
  const withName = agents.some((a) => a.name !== "" && a.name !== a.agentId);
  const withReason = wide || agents.some((a) => reasonShown(a) !== "");
  const head = [
    "ID",
    ...(withName ? ["NAME"] : []),
    "STATUS",
    "IMAGE",
    "RESTARTS",
    "STARTED",
    "AGE",
    ...(wide ? ["CONTAINER", "NETWORK", "MEMORY", "COMMAND"] : []),
    ...(withReason ? ["REASON"] : []),
  ];
  const rows = agents.map((a) => [
    a.agentId,
    ...(withName ? [a.name] : []),
    paintState(statusName(a.status)),
    a.config?.image ?? "-",
    String(a.restartCount),
    relativeTime(a.startedAt, now),
    relativeTime(a.createdAt, now),
    ...(wide
      ? [
          a.status === AgentStatus.RUNNING || a.status === AgentStatus.PAUSED ? shortId(a.containerId) : "-",
          a.config?.policy === SandboxPolicy.CONTAINER_DIRECT ? "bridge" : "none",
          a.config?.resources && a.config.resources.memoryBytes > 0n ? formatBytes(a.config.resources.memoryBytes) : "default",
          a.config && a.config.command.length > 0 ? truncate(shellJoin(a.config.command), 60) : "(image default)",
        ]
      : []),
    ...(withReason ? [truncate(reasonShown(a), 60) || "-"] : []),
  ]);
  printTable(head, rows);
}

/** Prints one agent in detail. */
export function printAgent(a: Agent, now = Date.now()): void {
  const c = a.config;
  const r = c?.resources;
  const l = c?.lifecycle;
  const envNames = c?.envNames ?? [];
  printFields([
    ["ID", a.agentId],
    ["Name", a.name],
    ["Status", paintState(statusName(a.status)) + (a.statusReason ? ` (${a.statusReason})` : "")],
    ["Exit code", a.exitCode === undefined ? undefined : String(a.exitCode)],
    ["Image", c?.image ?? "-"],
    ["Command", c && c.command.length > 0 ? shellJoin(c.command) : "(image default)"],
    // Values are write-only: the service returns the names alone.
    ["Env", envNames.length === 0 ? undefined : envNames.map((k) => `${k}=<set>`).join(" ")],
    ["Network", c?.policy === SandboxPolicy.CONTAINER_DIRECT ? "bridge (CONTAINER_DIRECT)" : "none (CONTAINER)"],
    [
      "Resources",
      [
        `memory ${r && r.memoryBytes > 0n ? formatBytes(r.memoryBytes) : "default"}`,
        `cpus ${r && r.cpus > 0 ? r.cpus : "unlimited"}`,
        `pids ${r && r.pidsLimit > 0n ? r.pidsLimit : "default"}`,
        `output ${r && r.maxOutputBytes > 0n ? formatBytes(r.maxOutputBytes) : "default"}`,
        `disk ${r && r.diskBytes > 0n ? formatBytes(r.diskBytes) : "no limit unless the server limits all"}`,
      ].join(", "),
    ],
    [
      "Lifecycle",
      [
        `max idle ${l?.maxIdle === undefined ? "default" : isZeroDuration(l.maxIdle) ? "none" : formatDuration(l.maxIdle)}${l?.idleAction === IdleAction.PAUSE ? " (then paused)" : ""}`,
        `max lifetime ${isZeroDuration(l?.maxLifetime) ? "none" : formatDuration(l?.maxLifetime)}`,
        `restart on crash ${l?.restartOnCrash ? `yes (max ${l.maxRestarts ?? 3})` : "no"}`,
      ].join(", "),
    ],
    ["Container", a.containerId === "" ? undefined : shortId(a.containerId)],
    ["Workspace", a.workspacePath + (c?.workspace?.mountPoint ? ` -> ${c.workspace.mountPoint}` : "") + (c?.workspace?.readOnly ? " (read-only)" : "") + (c?.workspace?.noexec ? " (noexec)" : "")],
    ["Created", absoluteAndRelative(a.createdAt, now)],
    ["Started", absoluteAndRelative(a.startedAt, now)],
    ["Last active", absoluteAndRelative(a.lastActivity, now)],
    ["Restarts", `${a.restartCount} (crash restarts in a row: ${a.crashRestarts})`],
    ["Executions", String(a.executionCount)],
  ]);
}

/** "15:04:05  a1  RUNNING  container 0123456789ab" for one watch event; undefined for a bookmark. */
export function agentEventLine(ev: AgentEvent): string | undefined {
  const a = ev.agent;
  if (ev.type === EventType.BOOKMARK || a === undefined) return undefined;
  const time = colors.dim(new Date().toTimeString().slice(0, 8));
  const name = ev.type === EventType.REMOVED ? "REMOVED" : statusName(a.status);
  const state = paintState(name) + " ".repeat(Math.max(0, 10 - name.length));
  const extra: string[] = [];
  if (a.statusReason !== "") extra.push(a.statusReason);
  if (a.exitCode !== undefined && a.status === AgentStatus.FAILED) extra.push(`exit ${a.exitCode}`);
  if (a.status === AgentStatus.RUNNING && a.containerId !== "") extra.push(`container ${shortId(a.containerId)}`);
  return `${time}  ${a.agentId}  ${state}${extra.length ? " " + extra.join(", ") : ""}`.trimEnd();
}
