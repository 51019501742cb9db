/**
 * The bare baseline: a plain @grpc/grpc-js server (no interceptors, no logging, no
 * store) that answers the benchmarked RPCs of agentorch's own protos from memory. GetAgent
 * answers from the very agents agentorch returned (loaded from --agents FILE, a JSON array
 * of Agent messages as a grpc-js client received them); RegisterAgent/RemoveAgent feed
 * WatchAgents, SendMessage feeds StreamMessages. What the service costs beyond it is
 * agentorch's (and connect-node's) overhead.
 *
 * Run as its own process: node --import tsx bench/baseline-server.ts [--agents FILE]
 * It prints "listening PORT" on stdout once it serves on 127.0.0.1.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { PACKAGE_DEFINITION } from "./lib/grpc.js";
import type { Msg } from "./lib/grpc.js";

type Unary = grpc.handleUnaryCall<Msg, Msg>;
type ServerStream = grpc.handleServerStreamingCall<Msg, Msg>;

function timestamp(ms: number): Msg {
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

/**
 * A registered agent as agentorch answers it (defaults filled in, a workspace path), so the
 * messages this server sends are as large as agentorch's.
 */
function registeredAgent(config: Msg, now: number): Msg {
  const id = config.agentId as string;
  return {
    agentId: id,
    name: config.name || id,
    status: "AGENT_STATUS_IDLE",
    statusReason: "registered",
    containerId: "",
    workspacePath: `/tmp/agentorch-bench-baseline/data/workspaces/${id}`,
    createdAt: timestamp(now),
    restartCount: 0,
    executionCount: 0,
    crashRestarts: 0,
    config: {
      agentId: id,
      name: config.name || id,
      image: config.image,
      command: config.command,
      env: config.env ?? {},
      policy: "SANDBOX_POLICY_CONTAINER",
      resources: { memoryBytes: String(512 * 1024 * 1024), cpus: 0, pidsLimit: "256", maxOutputBytes: String(256 * 1024) },
      lifecycle: { maxIdle: { seconds: "3600", nanos: 0 }, maxLifetime: { seconds: "0", nanos: 0 }, restartOnCrash: false, maxRestarts: 3 },
      workspace: { mountPoint: "/workspace", readOnly: false },
    },
  };
}

/** The in-memory state and the handlers over it. */
function createBaselineHandlers(agents: Map<string, Msg>) {
  let revision = 0;
  const watchers = new Set<grpc.ServerWritableStream<Msg, Msg>>();
  const mailboxes = new Map<string, { next: number; pending: Msg[]; readers: Set<grpc.ServerWritableStream<Msg, Msg>> }>();
  const mailbox = (id: string) => {
    let box = mailboxes.get(id);
    if (!box) mailboxes.set(id, (box = { next: 1, pending: [], readers: new Set() }));
    return box;
  };
  const notFound = (what: string): Partial<grpc.StatusObject> => ({ code: grpc.status.NOT_FOUND, details: `${what} not found` });
  const publish = (type: string, agent: Msg) => {
    const event = { event: { type, revision: String(++revision), agent } };
    for (const w of watchers) w.write(event);
  };

  const getAgent: Unary = (call, cb) => {
    const agent = agents.get(call.request.agentId as string);
    if (agent === undefined) cb(notFound("agent"));
    else cb(null, { agent });
  };
  const registerAgent: Unary = (call, cb) => {
    const config = call.request.agent as Msg;
    const id = config.agentId as string;
    if (agents.has(id)) return cb({ code: grpc.status.ALREADY_EXISTS, details: "agent exists" });
    const agent = registeredAgent(config, Date.now());
    agents.set(id, agent);
    publish("EVENT_TYPE_ADDED", agent);
    cb(null, { agent });
  };
  const removeAgent: Unary = (call, cb) => {
    const agent = agents.get(call.request.agentId as string);
    if (agent === undefined) return cb(notFound("agent"));
    agents.delete(call.request.agentId as string);
    publish("EVENT_TYPE_REMOVED", agent);
    cb(null, {});
  };
  const watchAgents: ServerStream = (call) => {
    if (call.request.sendInitialState) {
      for (const agent of agents.values()) call.write({ event: { type: "EVENT_TYPE_ADDED", revision: String(revision), agent } });
      call.write({ event: { type: "EVENT_TYPE_BOOKMARK", revision: String(revision) } });
    }
    watchers.add(call);
    call.on("cancelled", () => watchers.delete(call));
    call.on("close", () => watchers.delete(call));
  };
  const sendMessage: Unary = (call, cb) => {
    const m = call.request.message as Msg;
    const box = mailbox(m.toAgentId as string);
    const message = { ...m, messageId: randomUUID(), sequence: String(box.next++), sentAt: timestamp(Date.now()) };
    box.pending.push(message);
    for (const r of box.readers) r.write({ message });
    cb(null, { messageId: message.messageId, sequence: message.sequence });
  };
  const streamMessages: ServerStream = (call) => {
    const box = mailbox(call.request.agentId as string);
    for (const message of box.pending) call.write({ message });
    box.readers.add(call);
    call.on("cancelled", () => box.readers.delete(call));
    call.on("close", () => box.readers.delete(call));
  };
  const ackMessages: Unary = (call, cb) => {
    const box = mailbox(call.request.agentId as string);
    const upTo = Number(call.request.upToSequence);
    const before = box.pending.length;
    box.pending = box.pending.filter((m) => Number(m.sequence) > upTo);
    cb(null, { acknowledgedCount: String(before - box.pending.length) });
  };
  return {
    orchestrator: { getAgent, registerAgent, removeAgent, watchAgents },
    lifecycle: { sendMessage, streamMessages, ackMessages },
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const agentsFile = args[args.indexOf("--agents") + 1];
  const agents = new Map<string, Msg>();
  if (args.includes("--agents") && agentsFile) {
    for (const agent of JSON.parse(readFileSync(agentsFile, "utf8")) as Msg[]) agents.set(agent.agentId as string, agent);
  }
  const handlers = createBaselineHandlers(agents);
  const pkg = grpc.loadPackageDefinition(PACKAGE_DEFINITION) as unknown as {
    agentorch: { v1: { AgentOrchestratorService: grpc.ServiceClientConstructor; LifecycleService: grpc.ServiceClientConstructor } };
  };
  const server = new grpc.Server();
  server.addService(pkg.agentorch.v1.AgentOrchestratorService.service, handlers.orchestrator);
  server.addService(pkg.agentorch.v1.LifecycleService.service, handlers.lifecycle);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  process.stdout.write(`listening ${port}\n`);
  const stop = () => {
    server.forceShutdown();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err: unknown) => {
  console.error("baseline server:", err);
  process.exit(1);
});
