/**
 * The core wired as the service wires it, for unit tests: AgentService and TaskService on
 * the real SQLite store (in memory unless a file is named), a fake container backend, fake
 * workspaces, a clock moved by hand and one event bus whose events are recorded. Passing
 * an earlier core's store, backend, workspaces and clock opens a second core over them, as
 * a restart of the service would. Call closeCores in afterEach.
 */
import { AgentService, type AgentServiceConfig } from "../../src/core/agent-service.js";
import { EventBus } from "../../src/core/event-bus.js";
import type { Logger, StoredEvent } from "../../src/core/ports.js";
import { TaskService } from "../../src/core/tasks/task-service.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { createSqliteTaskStore } from "../../src/store/sqlite/task-store.js";
import { createTestLogger, ManualClock } from "../fakes/clock-and-logger.js";
import { FakeBackend } from "../fakes/fake-backend.js";
import { FakeWorkspaces } from "../fakes/fake-workspaces.js";

export interface CoreOptions {
  /** An earlier core's store (a restart); otherwise one is opened here, and closed by closeCores. */
  store?: SqliteStore;
  /** The database file of a store opened here; ":memory:" unless set. */
  dbPath?: string;
  backend?: FakeBackend;
  workspaces?: FakeWorkspaces;
  clock?: ManualClock;
  /** Over the defaults: instance "test-instance", 100 running, any image, no enforcement timer. */
  agentConfig?: Partial<AgentServiceConfig>;
}

/** AgentService and what it runs on. */
export interface AgentCore {
  store: SqliteStore;
  backend: FakeBackend;
  workspaces: FakeWorkspaces;
  clock: ManualClock;
  logger: Logger;
  bus: EventBus;
  /** Every event published on the bus, in order. */
  events: StoredEvent[];
  agents: AgentService;
  /** Opens the services (recovery after a restart runs here). */
  open(): Promise<void>;
  /** Closes the services, once; the store stays open for a restart over it. */
  close(): Promise<void>;
}

/** AgentService and TaskService, as the service runs them. */
export interface Core extends AgentCore {
  tasks: TaskService;
}

const built: AgentCore[] = [];
const ownStores: SqliteStore[] = [];

/** Closes every core built so far (the latest first), then the stores opened for them. */
export async function closeCores(): Promise<void> {
  for (const core of built.splice(0).reverse()) await core.close();
  for (const store of ownStores.splice(0)) store.close();
}

function build(options: CoreOptions, withTasks: boolean): AgentCore & { tasks?: TaskService } {
  const logger = createTestLogger();
  const clock = options.clock ?? new ManualClock();
  let store = options.store;
  if (!store) {
    store = openSqliteStore({ path: options.dbPath ?? ":memory:", logger, clock });
    ownStores.push(store);
  }
  const deps = {
    store,
    backend: options.backend ?? new FakeBackend(),
    workspaces: options.workspaces ?? new FakeWorkspaces(),
    clock,
    logger,
    bus: new EventBus(logger),
  };
  const events: StoredEvent[] = [];
  deps.bus.subscribe((e) => events.push(e));
  const config = { instanceId: "test-instance", maxRunning: 100, imageAllowlist: [], enforceIntervalMs: 0, ...options.agentConfig };
  const agents = new AgentService({ ...deps, config });
  // Made before agents.open(), as in the service: it hears the exits noticed while the agents reconcile.
  const tasks = withTasks ? new TaskService({ ...deps, agents, tasks: createSqliteTaskStore(store), reapIntervalMs: 0 }) : undefined;
  let closed = false;
  const core = {
    ...deps,
    events,
    agents,
    tasks,
    async open() {
      await agents.open();
      await tasks?.open();
    },
    async close() {
      if (closed) return;
      closed = true;
      await tasks?.close();
      await agents.close();
    },
  };
  built.push(core);
  return core;
}

/** A core with TaskService, not opened yet: for services that must subscribe before it opens. */
export function buildCore(options: CoreOptions = {}): Core {
  return build(options, true) as Core;
}

/** A core with TaskService, opened. */
export async function openCore(options: CoreOptions = {}): Promise<Core> {
  const core = buildCore(options);
  await core.open();
  return core;
}

/** AgentService alone, opened. */
export async function openAgentCore(options: CoreOptions = {}): Promise<AgentCore> {
  const core = build(options, false);
  await core.open();
  return core;
}
