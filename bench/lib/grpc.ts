/**
 * grpc-js clients for the benchmarks, made from the .proto files and nothing of the
 * service's code, as a polyglot client would. Each client gets its own connection
 * (local subchannel pool), so "many clients" really are many connections.
 */
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { REPO_ROOT } from "./service-process.js";

export const LOAD_OPTIONS: protoLoader.Options = {
  includeDirs: [path.join(REPO_ROOT, "proto"), path.join(REPO_ROOT, "third_party")],
  enums: String,
  longs: String,
  oneofs: true,
  defaults: true,
};

/** The package definition of both agentorch services. */
export const PACKAGE_DEFINITION = protoLoader.loadSync(
  ["agentorch/v1/orchestrator_service.proto", "agentorch/v1/lifecycle_service.proto"],
  LOAD_OPTIONS,
);

type ClientCtor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => grpc.Client;
const pkg = grpc.loadPackageDefinition(PACKAGE_DEFINITION) as unknown as {
  agentorch: { v1: { AgentOrchestratorService: ClientCtor; LifecycleService: ClientCtor } };
};

export type Msg = Record<string, unknown>;
type UnaryFn = (req: Msg, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Msg) => void) => grpc.ClientUnaryCall;
type StreamFn = (req: Msg, meta?: grpc.Metadata, opts?: grpc.CallOptions) => grpc.ClientReadableStream<Msg>;

/** A grpc-js client on one connection, with promise-returning unary calls. */
export class Client {
  readonly orchestrator: grpc.Client;
  readonly lifecycle: grpc.Client;

  constructor(address: string) {
    const opts: grpc.ChannelOptions = { "grpc.use_local_subchannel_pool": 1, "grpc.max_receive_message_length": 64 * 1024 * 1024 };
    this.orchestrator = new pkg.agentorch.v1.AgentOrchestratorService(address, grpc.credentials.createInsecure(), opts);
    // Shares the orchestrator client's channel: one connection per Client.
    this.lifecycle = new pkg.agentorch.v1.LifecycleService(address, grpc.credentials.createInsecure(), {
      ...opts,
      channelOverride: this.orchestrator.getChannel(),
    });
  }

  /** Calls an AgentOrchestratorService method (lowerCamel name). */
  agents(method: string, req: Msg, timeoutMs = 120_000): Promise<Msg> {
    return unary(this.orchestrator, method, req, timeoutMs);
  }

  /** Calls a LifecycleService method (lowerCamel name). */
  life(method: string, req: Msg, timeoutMs = 120_000): Promise<Msg> {
    return unary(this.lifecycle, method, req, timeoutMs);
  }

  agentsStream(method: string, req: Msg): grpc.ClientReadableStream<Msg> {
    return (this.orchestrator as unknown as Record<string, StreamFn>)[method]!.call(this.orchestrator, req);
  }

  lifeStream(method: string, req: Msg): grpc.ClientReadableStream<Msg> {
    return (this.lifecycle as unknown as Record<string, StreamFn>)[method]!.call(this.lifecycle, req);
  }

  waitReady(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) =>
      this.orchestrator.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())),
    );
  }

  close(): void {
    this.orchestrator.close();
  }
}

function unary(client: grpc.Client, method: string, req: Msg, timeoutMs: number): Promise<Msg> {
  const fn = (client as unknown as Record<string, UnaryFn>)[method];
  if (typeof fn !== "function") return Promise.reject(new Error(`no method ${method}`));
  return new Promise((resolve, reject) => {
    fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

/** Runs fn over items with at most `limit` in flight; resolves with the results in order. */
export async function inPool<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** A minimal agent registration (busybox sleeping), as the benchmarks register them. */
export function agentConfig(agentId: string, image: string, command: string[] = ["sleep", "3600"]): Msg {
  return { agentId, name: agentId, image, command };
}
