/**
 * The process is SIGKILLed at random points (a seeded loop) while clients register
 * agents, start and stop them, run tasks and send messages, and sometimes again while it
 * recovers; then it is started on the same data directory. After every restart:
 * - every call that returned OK is reflected (agents, their status and container, tasks,
 *   messages), and an in-flight call shows one of its two possible outcomes, nothing else;
 * - no agent has two containers and no labelled container is left without its agent;
 * - every task ends correctly (adopted and finished, or FAILED with a reason);
 * - watchers that resume after the last revision they saw miss nothing and see nothing twice
 *   (compared at the end with a fresh replay of the whole event log).
 * The real process (node --import tsx src/server/main.ts), the real engine, grpc-js clients.
 * AGENTORCH_FAULT_KILLS / AGENTORCH_FAULT_SEED / AGENTORCH_FAULT_LONG=1 scale it up.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeDocker } from "../support/docker.js";
import { ensureCompiled } from "./support/build.js";
import { CrashWorkload } from "./support/crash-workload.js";
import { assertEngineResponsive, type FaultEngine, faultEngine } from "./support/engine.js";
import { faultConfig, reportFigures, rng } from "./support/fault-config.js";
import { type Clients, connect } from "./support/grpc.js";
import { replay, ResumingWatch } from "./support/resuming-watch.js";
import { countLogs, type ServiceProcess, spawnService } from "./support/service.js";
import { listAgents } from "./support/world.js";

const cfg = faultConfig();
const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-fault-crash-"));
const env = {
  AGENTORCH_WATCH_BOOKMARK_INTERVAL_MS: "200",
  AGENTORCH_EVENT_RETENTION: "10000000",
  // Only events and restarts may notice what happened: no timer hides a missed exit.
  AGENTORCH_REAP_INTERVAL_MS: "3600000",
  AGENTORCH_ENFORCE_INTERVAL_MS: "3600000",
};
let instanceId: string | undefined;
const procs: ServiceProcess[] = [];
let engine: FaultEngine;

beforeAll(async () => {
  [engine] = await Promise.all([faultEngine(), ensureCompiled()]);
}, 180_000);

afterAll(async () => {
  for (const p of procs) p.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.exited));
  if (instanceId) await engine?.removeContainersOf(instanceId);
  await engine?.close();
  rmSync(dataDir, { recursive: true, force: true });
}, 120_000);

async function startService(): Promise<{ proc: ServiceProcess; c: Clients }> {
  const proc = spawnService({ dataDir, env, dockerHost: engine.dockerHost, compiled: true });
  procs.push(proc);
  const info = await proc.started;
  instanceId ??= info.instanceId;
  expect(info.instanceId, "the instance id is stable per data directory").toBe(instanceId);
  return { proc, c: connect(info.address) };
}

async function killHard(proc: ServiceProcess): Promise<void> {
  proc.kill("SIGKILL");
  const { signal } = await proc.exited;
  expect(signal).toBe("SIGKILL");
}

/** Writes what a failure needs to be understood: both processes' logs and the engine's view. Returns the file. */
async function dumpEvidence(killPoint: number, current: ServiceProcess, killed: ServiceProcess, violations: string[]): Promise<string> {
  const file = path.join(tmpdir(), `agentorch-fault-crash-${process.pid}-kill${killPoint}.log`);
  const responsive = await assertEngineResponsive(engine.docker).then(
    () => "engine answers",
    (err: unknown) => String(err),
  );
  const containers = await engine.docker.listContainers({ all: true, filters: { label: [`agentorch.instance=${instanceId}`] } }).catch(() => []);
  const lines = [
    ...violations.map((v) => `# violation: ${v}`),
    `# ${responsive}`,
    `# containers: ${JSON.stringify(containers.map((x) => ({ id: x.Id.slice(0, 12), agent: x.Labels["agentorch.agent-id"], state: x.State, status: x.Status })))}`,
    "# ---- the killed process",
    ...killed.logs.map((l) => JSON.stringify(l)),
    "# ---- the restarted process",
    ...current.logs.map((l) => JSON.stringify(l)),
  ];
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

describeDocker("process killed at random points (SIGKILL), then restarted", () => {
  it(
    `loses no acknowledged write across ${cfg.kills} kill points (seed ${cfg.seed})`,
    async () => {
      const r = rng(cfg.seed);
      const workload = new CrashWorkload(`crash-${randomBytes(3).toString("hex")}`, cfg.seed + 1);
      const docker = engine.docker;
      const watches = { agents: new ResumingWatch("agents"), tasks: new ResumingWatch("tasks") };
      const failures: string[] = [];
      let killPoints = 0;
      let recoveryKills = 0;
      let adopted = 0;
      let reconciles = 0;
      // Where the time goes, per phase (ms, summed over the run): the figures say what a kill costs.
      const phaseMs = { workload: 0, recoveryKill: 0, restart: 0, verify: 0 };
      const lap = (() => {
        let t = Date.now();
        return (phase: keyof typeof phaseMs) => {
          const now = Date.now();
          phaseMs[phase] += now - t;
          t = now;
        };
      })();

      const began = Date.now();
      let reportedAt = 0;
      let { proc, c } = await startService();
      lap("restart");
      while (killPoints < cfg.kills) {
        watches.agents.open(c);
        watches.tasks.open(c);
        // Kill while the workload runs, at a random moment. One round in four (and the first)
        // runs until a container start has been acknowledged (up to 30 s), then a little more:
        // on a loaded machine a start takes 3-10 s, longer than most rounds, and starts and
        // stops must be acknowledged too, not only in flight.
        const running = workload.run(c);
        if (killPoints === 0 || r.chance(0.25)) {
          const startsBefore = workload.figures.acknowledged.start;
          for (let waited = 0; waited < 30_000 && workload.figures.acknowledged.start === startsBefore; waited += 100) await sleep(100);
          await sleep(r.int(0, 1500));
        } else {
          await sleep(r.int(150, 2500));
        }
        workload.markKill();
        await killHard(proc);
        await running;
        c.close();
        killPoints++;
        lap("workload");

        // Sometimes kill it again while it recovers (opening the store, reconciling, adopting).
        if (killPoints < cfg.kills && r.chance(0.3)) {
          const recovering = spawnService({ dataDir, env, dockerHost: engine.dockerHost, compiled: true });
          procs.push(recovering);
          await recovering.waitForLog((l) => l.msg === "store opened", 30_000).catch(() => undefined);
          await sleep(r.int(0, 400));
          await killHard(recovering);
          killPoints++;
          recoveryKills++;
        }
        lap("recoveryKill");

        const previous = proc;
        ({ proc, c } = await startService());
        lap("restart");
        adopted += countLogs(proc, "adopted working task");
        reconciles += countLogs(proc, "reconciled with the engine");
        const violations = await workload.verify(c, docker, instanceId!, 120_000);
        lap("verify");
        if (violations.length > 0 || workload.unexpected.length > 0) {
          const found = [...violations, ...workload.unexpected];
          const dump = await dumpEvidence(killPoints, proc, previous, found);
          failures.push(`after kill point ${killPoints} (seed ${cfg.seed}; logs in ${dump}):\n  ${found.join("\n  ")}`);
          // Said at once: a long run may be stopped before its end.
          console.error(`[fault] crash-restart: ${failures[failures.length - 1]}`);
          workload.unexpected.length = 0;
        }
        if (failures.length >= 3) break;
        // A long run says how far it has got (and at what pace), in the report too.
        if (Math.floor(killPoints / 50) > reportedAt) {
          reportedAt = Math.floor(killPoints / 50);
          reportFigures("crash-restart-progress", {
            seed: cfg.seed,
            killPoints,
            recoveryKills,
            restarts: procs.length,
            elapsedMs: Date.now() - began,
            acknowledged: workload.figures.acknowledged,
            violations: failures.length,
            phaseMs: { ...phaseMs, ...workload.figures.verifyMs },
          });
        }
      }

      // Resumed watchers against a fresh replay of the whole log: no gap, no duplicate.
      const { revision } = await listAgents(c);
      watches.agents.open(c);
      watches.tasks.open(c);
      await Promise.all([watches.agents.caughtUp(revision, 30_000), watches.tasks.caughtUp(revision, 30_000)]);
      watches.agents.close();
      watches.tasks.close();
      const [agentLog, taskLog] = await Promise.all([replay(c, "agents", revision), replay(c, "tasks", revision)]);
      const seenAgents = watches.agents.events.filter((e) => e.revision <= revision);
      const seenTasks = watches.tasks.events.filter((e) => e.revision <= revision);
      expect([...watches.agents.problems, ...watches.tasks.problems]).toEqual([]);
      expect(seenAgents).toEqual(agentLog);
      expect(seenTasks).toEqual(taskLog);
      // Agent and task events share one gap-free revision counter.
      const all = [...agentLog, ...taskLog].map((e) => e.revision).sort((a, b) => a - b);
      expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));

      c.close();
      const exit = await proc.stop();
      expect(exit.code, "a graceful stop exits 0").toBe(0);

      reportFigures("crash-restart", {
        seed: cfg.seed,
        killPoints,
        recoveryKills,
        restarts: procs.length,
        acknowledged: workload.figures.acknowledged,
        inFlightAtKill: workload.figures.inFlightAtKill,
        tasksFinished: workload.figures.tasksFinished,
        tasksAdoptedAfterRestart: adopted,
        reconciliations: reconciles,
        messagesVerified: workload.figures.messagesVerified,
        watchEventsVerified: seenAgents.length + seenTasks.length,
        violations: failures.length,
        phaseMs: { ...phaseMs, ...workload.figures.verifyMs },
        durationMs: Object.values(phaseMs).reduce((a, b) => a + b, 0),
      });
      expect(failures).toEqual([]);
      expect(workload.figures.acknowledged.start, "the workload started containers").toBeGreaterThan(0);
    },
    // A round takes 5-30 s on a loaded machine (the rounds that wait for a start, 8 s restarts).
    120_000 + cfg.kills * 60_000,
  );
});
