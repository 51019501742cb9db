/**
 * The core's ports: everything outside the domain (the container engine, the store,
 * the file system, time, logging) is reached through these interfaces, written in
 * domain types only. No dockerode, SQLite or proto type crosses them.
 */
import type { Agent, AgentStatus, Resources, SandboxPolicy } from "./agent.js";

// ---------------------------------------------------------------- container backend

/** Labels every container of ours carries, so leftovers can be found and adopted. */
export interface ContainerLabels {
  agentId: string;
  /** The service instance (one per data directory) that owns the container. */
  instanceId: string;
  taskId?: string;
}

/** Everything needed to create one hardened container. */
export interface ContainerSpec {
  image: string;
  /** Empty: the image's default command. */
  command: string[];
  env: Record<string, string>;
  policy: SandboxPolicy;
  resources: Resources;
  /**
   * Directory bind-mounted at mountPoint, as the service sees it (a backend whose engine sees
   * another file system, e.g. the service runs in a container, translates it).
   */
  workspace: { hostPath: string; mountPoint: string; readOnly: boolean };
  /** Directory bind-mounted read-only at /run/agentorch (the service's socket), if any; translated the same way. */
  socketDir?: string;
  labels: ContainerLabels;
}

export interface ContainerInfo {
  containerId: string;
  labels: ContainerLabels;
  running: boolean;
  /** Running but frozen (docker pause). */
  paused?: boolean;
  /** Being removed (`docker rm -f` under way): as good as gone. */
  removing?: boolean;
  exitCode?: number;
  oomKilled: boolean;
  /** Epoch ms. */
  startedAt?: number;
  finishedAt?: number;
}

export type ContainerEventType = "start" | "die" | "oom" | "destroy" | "pause" | "unpause";

export interface ContainerEvent {
  type: ContainerEventType;
  containerId: string;
  labels: ContainerLabels;
  /** For "die". */
  exitCode?: number;
  /** Epoch ms. */
  time: number;
}

export interface ContainerOutput {
  data: Uint8Array;
  /** True when older output was cut off (by the engine's cap or by maxBytes). */
  truncated: boolean;
}

export interface ContainerExit {
  exitCode: number;
  oomKilled: boolean;
}

export interface ContainerWatchHandler {
  onEvent(event: ContainerEvent): void;
  /** The event stream is (re)connected: the caller should reconcile, events may have been missed. */
  onConnected(): void;
  /** The event stream broke; the backend retries by itself until the signal aborts. */
  onDisconnected(err: Error): void;
}

/**
 * A container engine. Every method rejects with AgentorchError "unavailable" when the
 * engine cannot be reached, and honours its AbortSignal.
 */
export interface ContainerBackend {
  /** Where the engine is expected (e.g. unix:///var/run/docker.sock), for error messages. */
  readonly endpoint: string;
  ping(signal?: AbortSignal): Promise<void>;
  imageExists(image: string, signal?: AbortSignal): Promise<boolean>;
  /** Creates and starts a container. A failure after create removes what was created. */
  spawn(spec: ContainerSpec, signal?: AbortSignal): Promise<{ containerId: string; startedAt: number }>;
  /** SIGKILLs a running container; it stays for inspection. A container already stopped or gone is success. */
  kill(containerId: string, signal?: AbortSignal): Promise<void>;
  /** Freezes a running container's processes (docker pause). Already paused is success; not running is FAILED_PRECONDITION, gone NOT_FOUND. */
  pause(containerId: string, signal?: AbortSignal): Promise<void>;
  /** Thaws a paused container. Not paused (already running) is success; gone is NOT_FOUND. */
  unpause(containerId: string, signal?: AbortSignal): Promise<void>;
  /** Kills (if running) and removes a container. A container already gone is success. */
  remove(containerId: string, signal?: AbortSignal): Promise<void>;
  /** undefined when the container does not exist. */
  inspect(containerId: string, signal?: AbortSignal): Promise<ContainerInfo | undefined>;
  /** Waits for the container to exit. Rejects "not_found" when it does not exist. */
  wait(containerId: string, signal?: AbortSignal): Promise<ContainerExit>;
  /** The last maxBytes of stdout+stderr, interleaved. */
  output(containerId: string, maxBytes: number, signal?: AbortSignal): Promise<ContainerOutput>;
  /** Follows output: chunks until the container stops or signal aborts. */
  followOutput(containerId: string, tailBytes: number, signal: AbortSignal): AsyncIterable<Uint8Array>;
  /** Every container labelled with this instance id, running or not. */
  list(instanceId: string, signal?: AbortSignal): Promise<ContainerInfo[]>;
  /** Streams events of this instance's containers until signal aborts, reconnecting as needed. */
  watch(instanceId: string, handler: ContainerWatchHandler, signal: AbortSignal): void;
}

// ---------------------------------------------------------------- workspaces

/** Agent workspace directories on the host. */
/** What an agent asks of its workspace (fixed at registration). */
export interface WorkspaceOptions {
  /** The size limit in bytes: the agent's resources.disk_bytes, else the admin's ceiling. */
  sizeBytes: number;
  /** The agent asked for sizeBytes itself: where no size limit can be enforced, that is FAILED_PRECONDITION rather than no limit. */
  sizeAsked: boolean;
  /** Files in the workspace may not be executed (workspace.noexec); FAILED_PRECONDITION where it cannot be enforced. */
  noexec: boolean;
}

export interface Workspaces {
  /**
   * Creates the agent's workspace, or makes sure the existing one is ready (mounted, after a
   * reboot), with the size limit and options asked; writable by the container's user.
   * Returns the host path. Called at registration and again before each start. Without
   * options: no size limit, executables allowed.
   */
  create(agentId: string, options?: WorkspaceOptions): Promise<string>;
  remove(agentId: string): Promise<void>;
  /**
   * Moves the workspace out of the way (kept for the operator, never reused by a later agent
   * of the same id); returns where it went, or undefined when there was none.
   */
  setAside(agentId: string): Promise<string | undefined>;
  /** The agent ids that have a workspace directory (to find those of no agent). */
  list(): Promise<string[]>;
  /** Reads a file inside the workspace, at most maxBytes; undefined when absent. Refuses paths that leave it. */
  readFile(agentId: string, relativePath: string, maxBytes: number): Promise<Uint8Array | undefined>;
  /** Deletes a file inside the workspace if present. */
  removeFile(agentId: string, relativePath: string): Promise<void>;
}

// ---------------------------------------------------------------- store

export type EventType = "added" | "changed" | "removed";
export type EntityKind = "agent" | "task";

/** One entry of the event log. Revisions are global and gap-free. */
export interface StoredEvent<T = unknown> {
  revision: number;
  kind: EntityKind;
  type: EventType;
  id: string;
  /** The entity after the change (for "removed": as it was last). */
  entity: T;
  /** Epoch ms. */
  time: number;
}

export interface AgentQuery {
  /** Exclusive: agents whose id sorts after this one. */
  afterId?: string;
  limit: number;
  status?: AgentStatus;
}

/**
 * Durable state. Calls are synchronous and each is one transaction: the core relies on
 * that for check-and-set without locks (no other handler runs between a read and the
 * write that follows it when no await separates them). Every write of an entity appends
 * its event to the log in the same transaction and returns it; the core publishes it
 * after the call returns (i.e. after commit).
 * A write that cannot be persisted throws and changes nothing.
 */
export interface Store {
  getAgent(agentId: string): Agent | undefined;
  listAgents(query: AgentQuery): Agent[];
  /** Agents in any of these statuses. */
  agentsWithStatus(statuses: readonly AgentStatus[]): Agent[];
  countAgentsWithStatus(statuses: readonly AgentStatus[]): number;
  countAgents(): number;
  /**
   * Throws already_exists on a duplicate id. env (the values of agent.config.envNames) is
   * stored apart from the agent, in the same transaction: never in its row or its events.
   */
  insertAgent(agent: Agent, env?: Record<string, string>): StoredEvent<Agent>;
  /** The environment values given at registration ({} when none, or the agent is gone). Only a container start reads them. */
  agentEnv(agentId: string): Record<string, string>;
  /** Throws not_found when the agent is gone. */
  updateAgent(agent: Agent): StoredEvent<Agent>;
  /** Deletes the agent and its environment values. */
  deleteAgent(agentId: string): StoredEvent<Agent> | undefined;

  /** Containers whose kill or removal failed; the reaper retries them. */
  addPendingRemoval(containerId: string, agentId: string): void;
  pendingRemovals(): { containerId: string; agentId: string }[];
  deletePendingRemoval(containerId: string): void;

  /** The output tail of an agent's last container, kept after the container is removed. */
  saveOutput(agentId: string, output: ContainerOutput): void;
  getOutput(agentId: string): ContainerOutput | undefined;

  /** The newest revision in the log (0 when empty). */
  currentRevision(): number;
  /** The oldest revision still kept (currentRevision()+1 when the log is empty). */
  oldestRevision(): number;
  /** Events after a revision, in order, at most limit. */
  readEvents(afterRevision: number, limit: number): StoredEvent[];
  /** Drops the oldest events beyond the newest keep. */
  pruneEvents(keep: number): void;

  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
  close(): void;
}

// ---------------------------------------------------------------- time and logs

export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** The subset of pino's logger the core uses. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}
