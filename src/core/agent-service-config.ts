/** The configuration and collaborators of AgentService (kept apart so the service stays short). */
import type { AgentCeilings } from "./agent-ceilings.js";
import type { EventBus } from "./event-bus.js";
import type { Clock, ContainerBackend, Logger, Store, Workspaces } from "./ports.js";
import type { WatchLimits } from "./watch.js";

export interface AgentServiceConfig {
  /** Names this service's containers (label agentorch.instance). */
  instanceId: string;
  /** Agents in STARTING, RUNNING or STOPPING at once. */
  maxRunning: number;
  /** Image prefixes allowed; empty allows every image on the engine. */
  imageAllowlist: string[];
  /** Where workspaces may be mounted (normalised mount points under one of these); default DEFAULT_MOUNT_PREFIXES. */
  mountPrefixes?: readonly string[];
  /** Agent ids and images that may have a network without the admin role (AGENTORCH_NETWORK_ALLOWLIST). */
  networkAllowlist?: readonly string[];
  /** The ceilings until the lifecycle config sets them (policy.setCeilings); default DEFAULT_AGENT_CEILINGS. */
  ceilings?: AgentCeilings;
  /** How often idle/lifetime limits are enforced; 0 disables the timer. */
  enforceIntervalMs: number;
  /** Host directory mounted read-only at /run/agentorch in every container. */
  socketDir?: string;
  /** Path of the socket as the container sees it (AGENTORCH_SOCKET). */
  containerSocketPath?: string;
  /** Base delay of crash restarts; doubled per restart in a row, capped at 30 s. */
  restartBackoffMs?: number;
  /** Watch streams: heartbeat bookmark interval (default 30 s) and live events held per slow consumer (default 10,000). */
  watch?: WatchLimits;
}

export interface AgentServiceDeps {
  store: Store;
  backend: ContainerBackend;
  workspaces: Workspaces;
  clock: Clock;
  logger: Logger;
  bus: EventBus;
  config: AgentServiceConfig;
}
