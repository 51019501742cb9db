// SIGHUP reloads the operator tokens of a running process: a token removed from the file
// stops working, a new one works, and a broken file keeps the previous set (and says so).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/core/tokens.js";
import { spawnService, type ServiceProcess } from "../fault/support/service.js";
import { grpcClient, rpc, rpcError } from "../support/grpc.js";

const dir = mkdtempSync(path.join(tmpdir(), "agentorch-hup-"));
const tokensFile = path.join(dir, "tokens");
let service: ServiceProcess | undefined;
afterAll(async () => {
  await service?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

describe("operator tokens reloaded on SIGHUP", () => {
  it("swaps the token set without a restart, and keeps it when the new file is bad", async () => {
    writeFileSync(tokensFile, `old:viewer:${hashToken("old-token-123")}\n`);
    service = spawnService({ dataDir: path.join(dir, "data"), env: { AGENTORCH_TOKENS_FILE: tokensFile } });
    const { address } = await service.started;
    const client = grpcClient(address, "agentorch.v1.AgentOrchestratorService");
    try {
      const list = (token: string) => rpc(client, "ListAgents", {}, { metadata: bearer(token) });
      await expect(list("old-token-123")).resolves.toBeDefined();
      expect((await rpcError(list("new-token-456"))).code).toBe(grpc.status.UNAUTHENTICATED);

      writeFileSync(tokensFile, `new:viewer:${hashToken("new-token-456")}\n`);
      let from = service.logs.length;
      service.kill("SIGHUP");
      await service.waitForLog((l) => l.msg === "operator tokens reloaded", 10_000, from);
      await expect(list("new-token-456")).resolves.toBeDefined();
      expect((await rpcError(list("old-token-123"))).code).toBe(grpc.status.UNAUTHENTICATED);

      writeFileSync(tokensFile, "this line is not NAME:ROLE:SHA256\n");
      from = service.logs.length;
      service.kill("SIGHUP");
      const failed = await service.waitForLog((l) => String(l.msg).startsWith("reloading operator tokens failed"), 10_000, from);
      expect(String(failed.err)).toContain("AGENTORCH_TOKENS_FILE");
      expect(JSON.stringify(failed)).not.toContain("this line is not");
      await expect(list("new-token-456")).resolves.toBeDefined();
      expect(service.hasExited).toBe(false);
    } finally {
      client.close();
    }
  });
});
