/**
 * docs/api.md stays what scripts/gen-api-docs.ts makes of the protos: a proto comment changed
 * without regenerating fails here, as does an RPC without a section or an example.
 */
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { file_agentorch_v1_lifecycle_service } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { file_agentorch_v1_orchestrator_service } from "../../gen/agentorch/v1/orchestrator_service_pb.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DOCS = path.join(ROOT, "docs", "api.md");
const run = promisify(execFile);
const scratch = mkdtempSync(path.join(tmpdir(), "agentorch-api-docs-"));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs the generator as `npm run docs:api` does; resolves with its exit code and stderr. */
async function generator(...args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run(process.execPath, ["--import", "tsx", "scripts/gen-api-docs.ts", ...args], { cwd: ROOT });
    return { code: 0, stderr };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: e.code ?? -1, stderr: e.stderr ?? "" };
  }
}

/** The Markdown between a heading and the next heading of the same or a higher level. */
function section(doc: string, heading: string): string {
  const level = /^#+/.exec(heading)![0].length;
  const lines = doc.split("\n");
  const start = lines.indexOf(heading);
  if (start < 0) return "";
  const end = lines.findIndex((l, i) => i > start && new RegExp(`^#{1,${level}} `).test(l));
  return lines.slice(start + 1, end < 0 ? undefined : end).join("\n");
}

describe("docs/api.md", () => {
  it("is current with proto/ (otherwise: npm run docs:api)", async () => {
    const { code, stderr } = await generator("--check");
    expect(stderr).toBe("");
    expect(code).toBe(0);
  });

  it("--check fails, naming the file and the fix, when the docs differ from the protos", async () => {
    const stale = path.join(scratch, "api.md");
    copyFileSync(DOCS, stale);
    writeFileSync(stale, readFileSync(stale, "utf8").replace("Validates and stores an agent", "Stores an agent"));
    const { code, stderr } = await generator("--check", "--out", stale);
    expect(code).toBe(1);
    expect(stderr).toMatch(/api\.md is not current with proto\/ \(first difference at line \d+\): run `npm run docs:api`/);

    const missing = await generator("--check", "--out", path.join(scratch, "none.md"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("it does not exist");
  });

  const doc = readFileSync(DOCS, "utf8");
  const services = [file_agentorch_v1_orchestrator_service.services[0]!, file_agentorch_v1_lifecycle_service.services[0]!];
  const methods = services.flatMap((s) => s.methods.map((m) => ({ service: s.typeName, m })));

  it("covers both services", () => {
    expect(services.map((s) => s.typeName)).toEqual(["agentorch.v1.AgentOrchestratorService", "agentorch.v1.LifecycleService"]);
    for (const s of services) expect(doc).toContain(`\n## ${s.name}\n`);
    expect(methods.length).toBeGreaterThanOrEqual(28);
  });

  it.each(methods.map(({ service, m }) => [`${service}/${m.name}`, m] as const))(
    "%s has a heading, its kind, request and response, and a buf curl example against it",
    (full, m) => {
      const body = section(doc, `### ${m.name}`);
      expect(body, `no "### ${m.name}" section`).not.toBe("");
      const kind = m.methodKind === "server_streaming" ? "server-streaming" : "unary";
      expect(body).toContain(`returns (${m.methodKind === "server_streaming" ? "stream " : ""}${m.output.name})\` · ${kind}`);
      expect(body).toContain(`#### ${m.input.name}\n`);
      expect(body).toContain(`#### ${m.output.name}\n`);
      expect(body).toContain("**Access:**");
      expect(body).toMatch(new RegExp(`buf curl --protocol grpc --http2-prior-knowledge[^\`]*-d '[^']*'[^\`]*http://127\\.0\\.0\\.1:50051/${full.replace(/\./g, "\\.")}\n`));
    },
  );

  it("lists each request field of an RPC with its comment", () => {
    const submit = section(doc, "#### SubmitTaskRequest");
    expect(submit).toContain("| `directive` | `directive` | [Directive](#directive) | Required. The work to do. |");
    expect(submit).toContain("Oneof `target` (`agent_id` or `template`): Required: where the task runs.");
    expect(section(doc, "### RegisterAgent")).toContain("**Errors:** `INVALID_ARGUMENT` (bad id or config), `ALREADY_EXISTS` (duplicate id)");
  });

  it("resolves every link to a heading of the document", () => {
    const slugs = new Set(doc.split("\n").flatMap((l) => /^#{1,6} (.+)$/.exec(l)?.[1]?.toLowerCase().replace(/[^a-z0-9 _-]/g, "").replace(/ /g, "-") ?? []));
    const links = [...doc.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(50);
    expect(links.filter((l) => !slugs.has(l))).toEqual([]);
  });
});
