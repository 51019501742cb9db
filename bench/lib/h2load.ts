/**
 * h2load (Debian's nghttp2-client) as a gRPC load generator: gRPC over h2c is a POST
 * with content-type application/grpc, te: trailers, and a body of length-prefixed
 * messages, so h2load can send a raw gRPC frame from a file. h2load only checks the
 * HTTP status: the benchmark checks the same request with a real gRPC client first.
 * Per-request latencies come from its --log-file (start, status, microseconds).
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { summarize } from "./stats.js";
import type { LatencySummary } from "./stats.js";

/** h2load's version line, or undefined when it is not installed. */
export function h2loadVersion(): string | undefined {
  const r = spawnSync("h2load", ["--version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return undefined;
  return r.stdout.trim();
}

/** A protobuf message with one string field (field number `field`), e.g. GetAgentRequest. */
export function stringFieldMessage(field: number, value: string): Buffer {
  const bytes = Buffer.from(value, "utf8");
  const len: number[] = [];
  let n = bytes.length;
  do {
    len.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>>= 7;
  } while (n > 0);
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...len]), bytes]);
}

/** A gRPC length-prefixed frame (uncompressed). */
export function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(0, 0);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

export interface H2loadSpec {
  /** http://127.0.0.1:PORT/package.Service/Method */
  url: string;
  body: Buffer;
  clients: number;
  streamsPerClient: number;
  warmupS: number;
  durationS: number;
}

export interface H2loadResult {
  requests: number;
  non2xx: number;
  callsPerSecond: number;
  latency: LatencySummary;
}

/** Runs h2load once (one thread) and parses its figures. */
export async function runH2load(spec: H2loadSpec): Promise<H2loadResult> {
  const dir = mkdtempSync(path.join(tmpdir(), "agentorch-h2load-"));
  try {
    const bodyPath = path.join(dir, "body.bin");
    const logPath = path.join(dir, "requests.log");
    writeFileSync(bodyPath, spec.body);
    const args = [
      "-t", "1",
      "-c", String(spec.clients),
      "-m", String(spec.streamsPerClient),
      "-D", String(spec.durationS),
      "--warm-up-time", String(spec.warmupS),
      "-d", bodyPath,
      "-H", "content-type: application/grpc",
      "-H", "te: trailers",
      "--log-file", logPath,
      spec.url,
    ];
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile("h2load", args, { maxBuffer: 16 * 1024 * 1024, timeout: (spec.warmupS + spec.durationS + 30) * 1000 }, (err, out, errOut) =>
        err ? reject(new Error(`h2load failed: ${err.message}\n${out}\n${errOut}`)) : resolve(out),
      ),
    );
    const rps = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(stdout);
    const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
    const latencies: number[] = [];
    let non2xx = 0;
    for (const line of readFileSync(logPath, "utf8").split("\n")) {
      const [, code, micros] = line.split("\t");
      if (micros === undefined) continue;
      if (!code!.startsWith("2")) non2xx++;
      latencies.push(Number(micros) / 1000);
    }
    if (!rps) throw new Error(`could not read h2load's output:\n${stdout}`);
    return {
      requests: latencies.length,
      non2xx: status ? Number(status[2]) + Number(status[3]) + Number(status[4]) : non2xx,
      callsPerSecond: Number(rps[1]),
      latency: summarize(latencies),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
