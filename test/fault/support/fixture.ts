/**
 * The setup and teardown the fault files share: a fault engine (private, or the shared
 * one) opened before the tests, a data directory, and the service processes a test spawns
 * on them; after the tests, clients are closed, every process stopped, the containers of
 * their instance removed, the engine closed and the directory deleted. Registers its own
 * beforeAll/afterAll: call it once at the top of a file.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";
import { type FaultEngine, faultEngine } from "./engine.js";
import { type ServiceOptions, type ServiceProcess, spawnService } from "./service.js";

export interface FaultFixture {
  readonly dataDir: string;
  /** The engine; set before the first test runs. */
  readonly engine: FaultEngine;
  /** Spawns the service on this data directory and engine; stopped at teardown, its instance's containers removed. */
  spawn(options?: Omit<ServiceOptions, "dataDir" | "dockerHost">): ServiceProcess;
  /** Closes c at teardown, before the services stop. Returns c. */
  closeAtEnd<C extends { close(): void }>(c: C): C;
}

export interface FaultFixtureOptions {
  /** Names the data directory: agentorch-fault-<name>-XXXXXX. */
  name: string;
  /** How long each service has to stop on SIGTERM before SIGKILL. */
  stopTimeoutMs: number;
  /** The whole teardown's timeout. */
  teardownTimeoutMs: number;
}

/** The fixture of one fault file. */
export function useFaultFixture(options: FaultFixtureOptions): FaultFixture {
  const dataDir = mkdtempSync(path.join(tmpdir(), `agentorch-fault-${options.name}-`));
  const procs: ServiceProcess[] = [];
  const instanceIds = new Set<string>();
  const closers: { close(): void }[] = [];
  let engine: FaultEngine | undefined;

  beforeAll(async () => {
    engine = await faultEngine();
  }, 120_000);

  afterAll(async () => {
    for (const c of closers) c.close();
    for (const p of procs) await p.stop(options.stopTimeoutMs);
    // A private engine goes with its containers; on the shared one, remove ours.
    for (const id of instanceIds) await engine?.removeContainersOf(id);
    await engine?.close();
    rmSync(dataDir, { recursive: true, force: true });
  }, options.teardownTimeoutMs);

  return {
    dataDir,
    get engine() {
      if (!engine) throw new Error("the fault engine is not started yet (use it inside a test)");
      return engine;
    },
    spawn(spawnOptions = {}) {
      const proc = spawnService({ ...spawnOptions, dataDir, dockerHost: this.engine.dockerHost });
      procs.push(proc);
      // The test awaits `started` and sees a failure itself; here only the instance id matters.
      proc.started.then((info) => instanceIds.add(info.instanceId), () => undefined);
      return proc;
    },
    closeAtEnd(c) {
      closers.push(c);
      return c;
    },
  };
}
