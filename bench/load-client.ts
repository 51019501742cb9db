/**
 * A grpc-js load client, run as its own process so its CPU does not share an event loop
 * with the benchmark driver: `connections` clients (one connection each) keep `inFlight`
 * unary calls each outstanding for a warm-up and then a measured period.
 *
 * Input: one JSON argument (LoadSpec). Output: one JSON line on stdout (LoadResult).
 */
import { Client } from "./lib/grpc.js";
import type { Msg } from "./lib/grpc.js";
import { summarize } from "./lib/stats.js";
import type { LatencySummary } from "./lib/stats.js";

export interface LoadSpec {
  address: string;
  /** An AgentOrchestratorService method, lowerCamel (e.g. "getAgent"). */
  method: string;
  /** Requests, used round-robin. */
  requests: Msg[];
  connections: number;
  inFlight: number;
  warmupMs: number;
  durationMs: number;
}

export interface LoadResult {
  calls: number;
  errors: number;
  firstError?: string;
  elapsedMs: number;
  callsPerSecond: number;
  latency: LatencySummary;
  clientCpuMs: number;
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const clients = Array.from({ length: spec.connections }, () => new Client(spec.address));
  await Promise.all(clients.map((c) => c.waitReady()));
  let phase: "warmup" | "measure" | "done" = "warmup";
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const loop = async (client: Client) => {
    while (phase !== "done") {
      const req = spec.requests[next++ % spec.requests.length]!;
      const counted = phase === "measure";
      const started = performance.now();
      try {
        await client.agents(spec.method, req, 30_000);
        if (counted && phase === "measure") latencies.push(performance.now() - started);
      } catch (err) {
        if (counted) {
          errors++;
          firstError ??= (err as Error).message;
        }
      }
    }
  };
  const loops = clients.flatMap((c) => Array.from({ length: spec.inFlight }, () => loop(c)));
  await new Promise((r) => setTimeout(r, spec.warmupMs));
  phase = "measure";
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, spec.durationMs));
  phase = "done";
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await Promise.all(loops);
  for (const c of clients) c.close();
  return {
    calls: latencies.length,
    errors,
    firstError,
    elapsedMs,
    callsPerSecond: (latencies.length / elapsedMs) * 1000,
    latency: summarize(latencies),
    clientCpuMs: (cpu.user + cpu.system) / 1000,
  };
}

run(JSON.parse(process.argv[2] ?? "{}") as LoadSpec).then(
  (result) => {
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exit(0);
  },
  (err: unknown) => {
    console.error("load client:", err);
    process.exit(1);
  },
);
