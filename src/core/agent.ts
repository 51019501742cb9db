/**
 * Agents in the core's own terms: the registered configuration (with defaults filled
 * in), the agent's current state, and the one table of legal status transitions.
 */
import { failedPrecondition } from "./errors.js";

export type SandboxPolicy = "container" | "container_direct";

/**
 * idle -> starting -> running -> stopping -> idle
 * running -> failed (exit != 0, OOM, container lost); failed -> starting (restart)
 * running -> terminated (max lifetime; final)
 * starting -> idle|failed (spawn failed: back to where it was)
 * running -> paused (max idle with idle_action pause) -> running (resumed) | stopping | failed
 */
export type AgentStatus = "idle" | "starting" | "running" | "paused" | "stopping" | "failed" | "terminated";

export const AGENT_TRANSITIONS: Readonly<Record<AgentStatus, readonly AgentStatus[]>> = {
  idle: ["starting"],
  starting: ["running", "idle", "failed"],
  running: ["stopping", "idle", "failed", "terminated", "paused"],
  paused: ["running", "stopping", "failed", "idle"],
  stopping: ["idle", "terminated", "failed"],
  failed: ["starting"],
  terminated: [],
};

/** Throws FAILED_PRECONDITION naming the current state when from -> to is not legal. */
export function assertTransition(agentId: string, from: AgentStatus, to: AgentStatus, op: string): void {
  if (!AGENT_TRANSITIONS[from].includes(to)) {
    throw failedPrecondition(`cannot ${op} agent "${agentId}": invalid state ${from.toUpperCase()}`, { agentId });
  }
}

/** A task may reserve only an agent no other task holds, and only while it is IDLE, FAILED or PAUSED (its container makes way for the task's). */
export function assertTaskCanReserve(agent: Agent): void {
  const agentId = agent.config.agentId;
  if (agent.currentTaskId) throw failedPrecondition(`agent "${agentId}" is busy with task ${agent.currentTaskId}`, { agentId });
  if (agent.status !== "idle" && agent.status !== "failed" && agent.status !== "paused") {
    throw failedPrecondition(`agent "${agentId}" is ${agent.status.toUpperCase()}: a task needs an IDLE, FAILED or PAUSED agent`, { agentId });
  }
}

export interface Resources {
  memoryBytes: number;
  /** CPU cores; validated configs always have one (the admin's default_agent_cpus when none was asked); 0 only in agents stored before. */
  cpus: number;
  pidsLimit: number;
  maxOutputBytes: number;
  /** Workspace size limit the agent asked for, in bytes; absent: none, unless every workspace is limited (then the admin's max_agent_disk_bytes). */
  diskBytes?: number;
}

/** What max idle does to a running agent: remove its container, or freeze it. */
export type IdleAction = "stop" | "pause";

/** Statuses in which the agent has a container (running, frozen, or on its way in or out). */
export const CONTAINER_STATES: readonly AgentStatus[] = ["starting", "running", "paused", "stopping"];

export interface LifecycleLimits {
  /** Milliseconds without activity before a running agent is stopped; 0 = no idle limit. */
  maxIdleMs: number;
  /** Milliseconds after its container started before the agent is terminated; 0 = no limit. */
  maxLifetimeMs: number;
  restartOnCrash: boolean;
  maxRestarts: number;
  /** Absent (stop) in agents stored before it existed. */
  idleAction?: IdleAction;
}

export interface WorkspaceConfig {
  mountPoint: string;
  readOnly: boolean;
  /** Files in the workspace may not be executed. Absent (false) in agents stored before it existed. */
  noexec?: boolean;
}

/** A validated agent configuration, defaults filled in. Fixed after registration. */
export interface AgentConfig {
  agentId: string;
  name: string;
  image: string;
  command: string[];
  /**
   * The names of the environment variables set, sorted. Their values are write-only: the
   * store keeps them apart from the agent (Store.agentEnv), so no reader, event or log line
   * that carries an Agent can carry a value.
   */
  envNames: string[];
  policy: SandboxPolicy;
  resources: Resources;
  lifecycle: LifecycleLimits;
  workspace: WorkspaceConfig;
}

/** An agent as stored. Times are epoch milliseconds. */
export interface Agent {
  config: AgentConfig;
  status: AgentStatus;
  statusReason: string;
  exitCode?: number;
  containerId: string;
  workspacePath: string;
  createdAt: number;
  startedAt?: number;
  lastActivity?: number;
  restartCount: number;
  executionCount: number;
  /** Crash restarts in a row since the last clean run; reset by a manual start. */
  crashRestarts: number;
  /** sha256 (hex) of the token of the current container; empty when none runs. */
  tokenHash: string;
  /** The task the agent runs now, if any (set by the lifecycle service). */
  currentTaskId?: string;
  /** True for an agent made from a task template and removed when the task ends. */
  ephemeral: boolean;
}

export const DEFAULTS = {
  memoryBytes: 512 * 1024 * 1024,
  pidsLimit: 256,
  maxOutputBytes: 256 * 1024,
  maxIdleMs: 60 * 60 * 1000,
  maxRestarts: 3,
  mountPoint: "/workspace",
} as const;
