/**
 * The agent socket from inside real containers: the real server (real Docker backend, an
 * operator token configured) starts agents from the busybox test image, and the test runs
 * commands in them (docker exec, as the container's own non-root user and environment).
 * With curl over the read-only mounted socket and its own AGENTORCH_TOKEN, an agent sends
 * a message, reads its mailbox (a Connect server stream), acknowledges it and reports
 * activity; acting as another agent, or without a valid token, is refused; once the agent
 * is stopped its old token no longer works, from the host or from another container.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import path from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, expect, it } from "vitest";
import { hashToken } from "../../src/core/tokens.js";
import { describeDocker, removeContainersOf, TEST_IMAGE, testDocker } from "../support/docker.js";
import { startTestServer } from "../support/server.js";
import type { TestServer } from "../support/server.js";

const ADMIN = randomBytes(32).toString("base64url");
const run = randomBytes(3).toString("hex");
const A = `sock-a-${run}`;
const B = `sock-b-${run}`;
const SEND = "http://localhost/agentorch.v1.LifecycleService/SendMessage";

let server: TestServer | undefined;

/** An operator call over TCP (Connect JSON); throws on an error answer. */
async function admin<T = Record<string, unknown>>(method: string, body: object): Promise<T> {
  const res = await fetch(`${server!.url}/agentorch.v1.${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as T;
  if (res.status !== 200) throw new Error(`${method}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

interface Agent {
  containerId: string;
  status: string;
  lastActivity: string;
}
const getAgent = async (id: string) => (await admin<{ agent: Agent }>("AgentOrchestratorService/GetAgent", { agentId: id })).agent;

/** Runs a shell script in the container (its user, its environment plus env); stdout as bytes. */
async function exec(containerId: string, script: string, env: Record<string, string> = {}): Promise<{ exitCode: number; stdout: Buffer; stderr: string }> {
  const docker = testDocker();
  const e = await docker.getContainer(containerId).exec({
    Cmd: ["sh", "-c", script],
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await e.start({ hijack: true, stdin: false });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough().on("data", (b: Buffer) => out.push(b));
  const stderr = new PassThrough().on("data", (b: Buffer) => err.push(b));
  docker.modem.demuxStream(stream, stdout, stderr);
  await new Promise<void>((resolve, reject) => {
    stream.on("end", resolve);
    stream.on("error", reject);
  });
  const { ExitCode } = await e.inspect();
  return { exitCode: ExitCode ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() };
}

/**
 * A unary Connect JSON call from inside the container, with the agent's own socket and
 * token unless told otherwise; prints the body, a newline and the HTTP status.
 */
async function agentCall(containerId: string, url: string, body: object, opts: { token?: "own" | "none" | string } = {}) {
  const auth = opts.token === "none" ? "" : opts.token === undefined || opts.token === "own" ? 'Bearer $AGENTORCH_TOKEN' : `Bearer ${opts.token}`;
  const script = `curl -sS -w '\\n%{http_code}' --unix-socket "$AGENTORCH_SOCKET" ${auth ? `-H "authorization: ${auth}"` : ""} -H 'content-type: application/json' -d "$BODY" ${url}`;
  const r = await exec(containerId, script, { BODY: JSON.stringify(body) });
  expect(r.exitCode, r.stderr).toBe(0);
  const text = r.stdout.toString();
  const nl = text.lastIndexOf("\n");
  return { status: Number(text.slice(nl + 1)), body: JSON.parse(text.slice(0, nl) || "{}") as Record<string, unknown> };
}

/** A printf format that writes one Connect envelope (flags 0, 4-byte length, JSON). */
function envelopeFormat(json: string): string {
  const len = Buffer.byteLength(json);
  const head = [0, len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255];
  return head.map((b) => `\\${b.toString(8).padStart(3, "0")}`).join("") + json.replace(/\\/g, "\\\\").replace(/%/g, "%%");
}

/** Splits a Connect stream body into its frames. */
function frames(body: Buffer): { end: boolean; json: Record<string, unknown> }[] {
  const out: { end: boolean; json: Record<string, unknown> }[] = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const len = body.readUInt32BE(at + 1);
    out.push({ end: (body[at]! & 2) !== 0, json: JSON.parse(body.subarray(at + 5, at + 5 + len).toString() || "{}") as Record<string, unknown> });
    at += 5 + len;
  }
  return out;
}

const message = (from: string, to: string, n: number) => ({
  message: { fromAgentId: from, toAgentId: to, taskId: `t-${n}`, statusUpdate: { taskId: `t-${n}`, progress: n, message: `step ${n}` } },
});

describeDocker("the agent socket, from inside a container", () => {
  let a: Agent;

  beforeAll(async () => {
    server = await startTestServer({ env: { AGENTORCH_TOKENS: `it-admin:admin:${hashToken(ADMIN)}`, AGENTORCH_CONTAINER_USER: "65534:65534" } });
    for (const id of [A, B]) {
      await admin("AgentOrchestratorService/RegisterAgent", { agent: { agentId: id, image: TEST_IMAGE, command: ["sleep", "600"] } });
    }
    a = (await admin<{ agent: Agent }>("AgentOrchestratorService/StartAgent", { agentId: A })).agent;
    expect(a.status).toBe("AGENT_STATUS_RUNNING");
  });

  afterAll(async () => {
    const instanceId = server?.app.instanceId;
    await server?.stop();
    if (instanceId) await removeContainersOf(instanceId);
  });

  it("gives the agent its socket (mounted read-only), its id and its token, as a non-root user", async () => {
    const r = await exec(
      a.containerId,
      'id -u; echo "$AGENTORCH_SOCKET|$AGENTORCH_AGENT_ID|${#AGENTORCH_TOKEN}"; ls -ln /run/agentorch; grep " /run/agentorch " /proc/mounts; touch /run/agentorch/x 2>&1; echo "touch=$?"',
    );
    const lines = r.stdout.toString().trim().split("\n");
    expect(lines[0]).toBe("65534");
    expect(lines[1]).toBe(`/run/agentorch/agentorch.sock|${A}|43`);
    expect(lines.find((l) => l.endsWith(" agentorch.sock"))).toMatch(/^srw-rw-rw-/);
    const mount = lines.find((l) => l.includes(" /run/agentorch "));
    expect(mount?.split(" ")[3]?.split(",")).toContain("ro");
    expect(lines.at(-2)).toMatch(/Read-only file system/);
    expect(lines.at(-1)).toBe("touch=1");
    const inspect = await testDocker().getContainer(a.containerId).inspect();
    expect(inspect.HostConfig.Binds).toContain(`${path.join(server!.dataDir, "run")}:/run/agentorch:ro`);
  });

  it("sends a message as itself, reads its mailbox as a Connect stream, acknowledges it and reports activity", async () => {
    const sent = await agentCall(a.containerId, SEND, message(A, B, 1));
    expect(sent).toMatchObject({ status: 200, body: { messageId: expect.any(String), sequence: "1" } });

    // Two messages for A, sent by an operator; A reads them over its socket.
    for (const n of [1, 2]) await admin("LifecycleService/SendMessage", message(B, A, n));
    const request = JSON.stringify({ agentId: A });
    const r = await exec(
      a.containerId,
      'printf "$ENVELOPE" | curl -sS --unix-socket "$AGENTORCH_SOCKET" -H "authorization: Bearer $AGENTORCH_TOKEN" ' +
        "-H 'content-type: application/connect+json' -H 'connect-protocol-version: 1' -H 'connect-timeout-ms: 2000' " +
        "--data-binary @- http://localhost/agentorch.v1.LifecycleService/StreamMessages",
      { ENVELOPE: envelopeFormat(request) },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const got = frames(r.stdout);
    const msgs = got.filter((f) => !f.end && f.json.message).map((f) => f.json.message as Record<string, unknown>);
    expect(msgs.map((m) => [m.fromAgentId, m.toAgentId, m.sequence, (m.statusUpdate as { message: string }).message])).toEqual([
      [B, A, "1", "step 1"],
      [B, A, "2", "step 2"],
    ]);
    // The stream ended (at the deadline the agent asked for), not with an auth error.
    expect(got.at(-1)?.end).toBe(true);
    expect((got.at(-1)?.json.error as { code?: string } | undefined)?.code ?? "ok").not.toMatch(/unauthenticated|permission_denied/);

    const acked = await agentCall(a.containerId, "http://localhost/agentorch.v1.LifecycleService/AckMessages", { agentId: A, upToSequence: "2" });
    expect(acked).toMatchObject({ status: 200, body: { acknowledgedCount: "2" } });

    const before = Date.parse((await getAgent(A)).lastActivity);
    const touched = await agentCall(a.containerId, "http://localhost/agentorch.v1.AgentOrchestratorService/ReportActivity", { agentId: A });
    expect(touched.status).toBe(200);
    expect(Date.parse((await getAgent(A)).lastActivity)).toBeGreaterThan(before);
  });

  it("is refused as another agent (PERMISSION_DENIED) and without a valid token (UNAUTHENTICATED)", async () => {
    expect(await agentCall(a.containerId, SEND, message(B, A, 3))).toMatchObject({ status: 403, body: { code: "permission_denied" } });
    expect(await agentCall(a.containerId, "http://localhost/agentorch.v1.LifecycleService/AckMessages", { agentId: B, upToSequence: "1" })).toMatchObject({
      status: 403,
      body: { code: "permission_denied" },
    });
    expect(await agentCall(a.containerId, "http://localhost/agentorch.v1.AgentOrchestratorService/StopAgent", { agentId: B })).toMatchObject({
      status: 403,
      body: { code: "permission_denied" },
    });
    expect(await agentCall(a.containerId, SEND, message(A, B, 4), { token: "none" })).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
    expect(await agentCall(a.containerId, SEND, message(A, B, 5), { token: "not-a-token" })).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
    // The operator's token is for the TCP port; the socket takes agents' tokens only.
    expect(await agentCall(a.containerId, SEND, message(A, B, 6), { token: ADMIN })).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
  });

  it("revokes the token when the container stops: from the host and from another agent's container", async () => {
    const oldToken = (await exec(a.containerId, 'printf %s "$AGENTORCH_TOKEN"')).stdout.toString();
    expect(oldToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await admin("AgentOrchestratorService/StopAgent", { agentId: A });

    const fromHost = await new Promise<number>((resolve, reject) => {
      const body = JSON.stringify(message(A, B, 7));
      const req = http.request(
        {
          socketPath: path.join(server!.dataDir, "run", "agentorch.sock"),
          path: "/agentorch.v1.LifecycleService/SendMessage",
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${oldToken}` },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    expect(fromHost).toBe(401);

    const b = (await admin<{ agent: Agent }>("AgentOrchestratorService/StartAgent", { agentId: B })).agent;
    expect(await agentCall(b.containerId, SEND, message(A, B, 8), { token: oldToken })).toMatchObject({ status: 401 });
    const bSends = await agentCall(b.containerId, SEND, message(B, A, 9));
    expect(bSends, JSON.stringify(bSends)).toMatchObject({ status: 200 });

    // A new start gets a new token; the old one stays dead.
    const again = (await admin<{ agent: Agent }>("AgentOrchestratorService/StartAgent", { agentId: A })).agent;
    const newToken = (await exec(again.containerId, 'printf %s "$AGENTORCH_TOKEN"')).stdout.toString();
    expect(newToken).not.toBe(oldToken);
    expect(await agentCall(again.containerId, SEND, message(A, B, 10), { token: oldToken })).toMatchObject({ status: 401 });
    expect(await agentCall(again.containerId, SEND, message(A, B, 11))).toMatchObject({ status: 200 });
  });
});
