/**
 * Python grpcio as a client of a running server, for tests that prove what another
 * language's official gRPC client sees. Needs Debian's python3-grpcio, python3-protobuf,
 * protobuf-compiler and protobuf-compiler-grpc (scripts/ensure-test-tools.sh installs them; .ci/run calls it).
 * Where they are missing the tests are skipped LOUDLY, except under CI, where that fails.
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { REPO_ROOT } from "./server.js";

const execFileAsync = promisify(execFile);

/** Debian's interpreter: the one its python3-grpcio is installed for (not a pyenv one on PATH). */
export const PYTHON = "/usr/bin/python3";

/** Why Python grpcio cannot be used here, or undefined when it can. */
export function pythonGrpcMissing(): string | undefined {
  const py = spawnSync(PYTHON, ["-c", "import grpc, google.protobuf"], { encoding: "utf8" });
  if (py.status !== 0) return `${PYTHON} with grpc and protobuf is missing (apt-get install python3-grpcio python3-protobuf)`;
  const protoc = spawnSync("protoc", ["--version"], { encoding: "utf8" });
  if (protoc.status !== 0) return "protoc is missing (apt-get install protobuf-compiler)";
  const plugin = spawnSync("sh", ["-c", "command -v grpc_python_plugin"], { encoding: "utf8" });
  if (plugin.status !== 0) return "grpc_python_plugin is missing (apt-get install protobuf-compiler-grpc)";
  return undefined;
}

/** Skip reason for describe.skipIf, after saying so loudly; under CI a missing tool is an error. */
export function requirePythonGrpc(): string | undefined {
  const missing = pythonGrpcMissing();
  if (missing === undefined) return undefined;
  if (process.env.CI) throw new Error(`CI must run the Python client tests: ${missing}; run scripts/ensure-test-tools.sh`);
  console.warn(`\n!!! SKIPPING the Python grpcio tests: ${missing} (scripts/ensure-test-tools.sh installs it) !!!\n`);
  return missing;
}

/** Generates the Python modules of the protos into a new directory (protoc --python_out). */
export function generatePython(): string {
  const out = mkdtempSync(path.join(tmpdir(), "agentorch-py-"));
  const proto = path.join(REPO_ROOT, "proto");
  const rpc = path.join(REPO_ROOT, "third_party/google/rpc");
  execFileSync("protoc", [`-I${proto}`, "-I/usr/include", `--python_out=${out}`, ...agentorchProtos()], { cwd: REPO_ROOT });
  // google/rpc under its own include root, so `import status_pb2` does not clash with the installed `google` package.
  execFileSync("protoc", [`-I${rpc}`, "-I/usr/include", `--python_out=${out}`, "status.proto", "error_details.proto"], { cwd: REPO_ROOT });
  return out;
}

/** The API's .proto files, relative to proto/. */
function agentorchProtos(): string[] {
  const dir = path.join(REPO_ROOT, "proto/agentorch/v1");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".proto"))
    .map((f) => `agentorch/v1/${f}`);
}

export interface PythonCall {
  method: string;
  request?: Record<string, unknown>;
}

/** What Python saw of each call: {ok} or {code, message, status_code, details}. */
export type PythonResult = { ok: Record<string, unknown> } | { code: string; message: string; status_code?: number; details?: Record<string, unknown>[] };

/**
 * Runs the calls with Python grpcio against address ("127.0.0.1:PORT"). Asynchronous: the
 * server under test may run in this process, and a synchronous child would starve it.
 */
export async function pythonCalls(address: string, genDir: string, calls: PythonCall[]): Promise<PythonResult[]> {
  const script = path.join(REPO_ROOT, "test/python/grpc_calls.py");
  const { stdout } = await execFileAsync(PYTHON, [script, address, genDir, JSON.stringify(calls)], { encoding: "utf8", timeout: 60_000 });
  return JSON.parse(stdout) as PythonResult[];
}
