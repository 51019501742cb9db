/**
 * How hard the fault suite pushes. CI runs the short, seeded defaults (a few minutes in
 * all); scripts/fault-long.sh sets AGENTORCH_FAULT_LONG=1 for the long run, and every
 * figure can also be set on its own. The seed makes a failing run reproducible: it is
 * printed with every failure, and AGENTORCH_FAULT_SEED replays it.
 *
 * Each suite appends its figures (kill points survived, inputs tried, load held…) as one
 * JSON line to AGENTORCH_FAULT_REPORT when set; docs/reliability.md quotes the long run's.
 */
import { appendFileSync } from "node:fs";

export interface FaultConfig {
  long: boolean;
  seed: number;
  /** Crash suite: SIGKILL points. */
  kills: number;
  /** Fuzz suite: inputs per RPC and transport (gRPC, Connect JSON, Connect proto, gRPC-Web). */
  fuzzRuns: number;
  /** Load suite: concurrent clients and how long they run. */
  loadClients: number;
  loadSeconds: number;
  /** Container-death suite: rounds of kill / OOM / rm -f. */
  deathRounds: number;
  /** Engine-outage suite: stop/start cycles of the private engine. */
  outageCycles: number;
  /** Front-door suite: connections opened and closed (HTTP/2, HTTP/1.1, agent socket). */
  churnH2: number;
  churnH1: number;
  churnAgent: number;
  /** Front-door suite: how long the unauthenticated and slow-body floods last. */
  floodSeconds: number;
}

function int(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v.trim() === "") return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer (got "${v}")`);
  return n;
}

/** Read once per test file. */
export function faultConfig(): FaultConfig {
  const long = process.env.AGENTORCH_FAULT_LONG === "1";
  return {
    long,
    seed: int("AGENTORCH_FAULT_SEED", 20261121),
    kills: int("AGENTORCH_FAULT_KILLS", long ? 1000 : 12),
    // 32 RPCs x 4 transports x 7,900 = 1,011,200 requests in the long run; 2,560 in CI.
    fuzzRuns: int("AGENTORCH_FAULT_FUZZ_RUNS", long ? 7900 : 20),
    loadClients: int("AGENTORCH_FAULT_LOAD_CLIENTS", 64),
    loadSeconds: int("AGENTORCH_FAULT_LOAD_SECONDS", long ? 600 : 20),
    deathRounds: int("AGENTORCH_FAULT_DEATH_ROUNDS", long ? 20 : 1),
    outageCycles: int("AGENTORCH_FAULT_OUTAGE_CYCLES", long ? 10 : 1),
    churnH2: int("AGENTORCH_FAULT_CHURN_H2", long ? 100_000 : 1500),
    churnH1: int("AGENTORCH_FAULT_CHURN_H1", long ? 20_000 : 500),
    churnAgent: int("AGENTORCH_FAULT_CHURN_AGENT", long ? 10_000 : 300),
    floodSeconds: int("AGENTORCH_FAULT_FLOOD_SECONDS", long ? 120 : 8),
  };
}

/** Appends one suite's figures to AGENTORCH_FAULT_REPORT (JSON lines) and prints them. */
export function reportFigures(suite: string, figures: Record<string, unknown>): void {
  const line = JSON.stringify({ suite, at: new Date().toISOString(), ...figures });
  console.log(`[fault] ${line}`);
  const file = process.env.AGENTORCH_FAULT_REPORT;
  if (file) appendFileSync(file, line + "\n");
}

/** A small seeded PRNG (mulberry32) for timings and choices; fuzz inputs come from fast-check. */
export function rng(seed: number): { next(): number; int(min: number, max: number): number; pick<T>(xs: readonly T[]): T; chance(p: number): boolean } {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
    chance: (p) => next() < p,
  };
}
