/**
 * Workspaces of removed and never-registered agents (issue 12): RemoveAgent without
 * delete_workspace keeps the workspace aside (workspaces-removed/<id>-<time>, named in the
 * answer), so re-registering the id starts with an empty workspace instead of inheriting the
 * old one; a directory left by a registration that never committed (a crash) is removed at
 * the next start, and logged. Real server, grpc-js client; no container is started.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type GrpcClients, grpcClients, rpc } from "../support/grpc.js";
import { startTestServer, type TestServer } from "../support/server.js";

const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-ws-cleanup-"));
const env = { DOCKER_HOST: "unix:///nonexistent/docker.sock" };
let server: TestServer | undefined;
let c: GrpcClients | undefined;

afterAll(async () => {
  c?.close();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const register = (id: string) => rpc<{ agent: { workspace_path: string } }>(c!.agents, "RegisterAgent", { agent: { agent_id: id, image: "agentorch/busybox:test" } });

describe("workspace cleanup", () => {
  it("keeps a removed agent's workspace aside, gives a re-registered id an empty one, and removes crash orphans at start", async () => {
    server = await startTestServer({ dataDir, env });
    c = grpcClients(server.address);
    const ws = (await register("ws-a")).agent.workspace_path;
    writeFileSync(path.join(ws, "secret.txt"), "old agent's work");

    const removed = await rpc<{ kept_workspace_path: string }>(c.agents, "RemoveAgent", { agent_id: "ws-a" });
    expect(removed.kept_workspace_path).toMatch(new RegExp(`^${path.join(dataDir, "workspaces-removed", "ws-a-")}`));
    expect(readFileSync(path.join(removed.kept_workspace_path, "secret.txt"), "utf8")).toBe("old agent's work");

    const again = (await register("ws-a")).agent.workspace_path;
    expect(again).toBe(ws);
    expect(readdirSync(again), "a re-registered id starts with an empty workspace").toEqual([]);

    // A registration that crashed after making its directory: removed at the next start.
    c.close();
    await server.stop();
    mkdirSync(path.join(dataDir, "workspaces", "ghost"));
    writeFileSync(path.join(dataDir, "workspaces", "ghost", "half"), "x");
    server = await startTestServer({ dataDir, env });
    c = grpcClients(server.address);
    expect(existsSync(path.join(dataDir, "workspaces", "ghost"))).toBe(false);
    expect(server.logs.some((l) => l.msg === "removing the workspace of no registered agent" && l.agentId === "ghost")).toBe(true);
    expect(existsSync(again), "a registered agent's workspace stays").toBe(true);
    expect(existsSync(removed.kept_workspace_path), "a kept workspace stays").toBe(true);

    // delete_workspace still deletes, and keeps nothing aside.
    const deleted = await rpc<{ kept_workspace_path: string }>(c.agents, "RemoveAgent", { agent_id: "ws-a", delete_workspace: true });
    expect([deleted.kept_workspace_path, existsSync(again)]).toEqual(["", false]);
  });
});
