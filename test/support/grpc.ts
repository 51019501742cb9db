/**
 * @grpc/grpc-js clients made from the .proto files, for end-to-end tests that want a client
 * sharing no code with the server, and the few ways tests call them: a unary call with a
 * deadline, a server stream read as it arrives, the error of a call that must fail.
 * Messages are plain objects: enums as names, 64-bit integers as strings, defaults filled
 * in, field names as written in the .proto ("proto") or as in JSON ("json").
 */
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { REPO_ROOT } from "./server.js";

const PROTO_FILES = [
  "agentorch/v1/orchestrator_service.proto",
  "agentorch/v1/lifecycle_service.proto",
  "grpc/health/v1/health.proto",
  "grpc/reflection/v1/reflection.proto",
  "grpc/reflection/v1alpha/reflection.proto",
];

/** Field names of messages: "proto" is snake_case as in the .proto, "json" is lowerCamelCase. */
export type FieldNames = "proto" | "json";

/** The services a client can be made for. */
export type ServiceName =
  | "agentorch.v1.AgentOrchestratorService"
  | "agentorch.v1.LifecycleService"
  | "grpc.health.v1.Health"
  | "grpc.reflection.v1.ServerReflection"
  | "grpc.reflection.v1alpha.ServerReflection";

const definitions = new Map<FieldNames, protoLoader.PackageDefinition>();

/** Every service's definitions, loaded once per kind of field names. */
export function packageDefinition(fields: FieldNames = "proto"): protoLoader.PackageDefinition {
  let def = definitions.get(fields);
  if (!def) {
    def = protoLoader.loadSync(PROTO_FILES, {
      includeDirs: [path.join(REPO_ROOT, "proto"), path.join(REPO_ROOT, "third_party")],
      keepCase: fields === "proto",
      enums: String,
      longs: String,
      defaults: true,
      oneofs: true,
    });
    definitions.set(fields, def);
  }
  return def;
}

/** One method's definition by its path ("/agentorch.v1.LifecycleService/SendMessage"), for raw client calls. */
export function methodDefinition(methodPath: string, fields: FieldNames = "proto"): protoLoader.MethodDefinition<object, object> {
  const [service, name] = methodPath.slice(1).split("/") as [string, string];
  const def = (packageDefinition(fields)[service] as protoLoader.ServiceDefinition | undefined)?.[name];
  if (!def) throw new Error(`no ${methodPath} in the loaded protos`);
  return def as protoLoader.MethodDefinition<object, object>;
}

export interface ClientOptions {
  /** "proto" unless set. */
  fields?: FieldNames;
  channel?: grpc.ChannelOptions;
}

/**
 * An insecure client of one service. Its methods are called by name through rpc() and
 * serverStream(); C is for a test that declares the methods it calls directly.
 */
export function grpcClient<C extends grpc.Client = grpc.Client>(address: string, service: ServiceName, options: ClientOptions = {}): C {
  const def = packageDefinition(options.fields)[service] as unknown as grpc.ServiceDefinition;
  const Ctor = grpc.makeClientConstructor(def, service);
  return new Ctor(address, grpc.credentials.createInsecure(), options.channel) as unknown as C;
}

/** Clients of the two agentorch services and Health on one address; close() closes all three. */
export interface GrpcClients {
  agents: grpc.Client;
  lifecycle: grpc.Client;
  health: grpc.Client;
  close(): void;
}

/** Clients for a server address ("127.0.0.1:PORT" or "unix:///path"). */
export function grpcClients(address: string, options: ClientOptions = {}): GrpcClients {
  const agents = grpcClient(address, "agentorch.v1.AgentOrchestratorService", options);
  const lifecycle = grpcClient(address, "agentorch.v1.LifecycleService", options);
  const health = grpcClient(address, "grpc.health.v1.Health", options);
  return {
    agents,
    lifecycle,
    health,
    close() {
      agents.close();
      lifecycle.close();
      health.close();
    },
  };
}

export type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => grpc.ClientUnaryCall;
export type ServerStreaming = (req: object, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;

/** The client's method of that name, bound to it. */
export function methodOf<F>(client: grpc.Client, name: string): F {
  const fn = (client as unknown as Record<string, unknown>)[name];
  if (typeof fn !== "function") throw new Error(`the client has no method ${name}`);
  return fn.bind(client) as F;
}

export interface CallOptions {
  metadata?: grpc.Metadata;
  /** Unary calls: 30 s unless set. Server streams: none unless set. */
  deadlineMs?: number;
}

/** Calls a unary RPC by name ("RegisterAgent"); resolves the response or rejects the grpc-js ServiceError (with .code and .details). */
export function rpc<T = unknown>(client: grpc.Client, method: string, req: object, options: CallOptions = {}): Promise<T> {
  const deadline = Date.now() + (options.deadlineMs ?? 30_000);
  return new Promise((resolve, reject) => {
    methodOf<Unary>(client, method)(req, options.metadata ?? new grpc.Metadata(), { deadline }, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

/** Opens a server stream by name ("WatchAgents"); the caller reads it and cancels it. */
export function serverStream<T = unknown>(client: grpc.Client, method: string, req: object, options: CallOptions = {}): grpc.ClientReadableStream<T> {
  const opts: grpc.CallOptions = options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };
  return methodOf<ServerStreaming>(client, method)(req, options.metadata ?? new grpc.Metadata(), opts) as grpc.ClientReadableStream<T>;
}

/** The grpc-js error of a call that must fail. */
export async function rpcError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error("expected the call to fail");
}

/** A server stream's messages as they arrive, and how it ended. */
export class StreamReader<T> {
  readonly items: T[] = [];
  error: grpc.ServiceError | undefined;
  /** Set when the server ended the stream with OK. */
  done = false;
  private readonly waiters = new Set<() => void>();

  constructor(readonly call: grpc.ClientReadableStream<unknown>) {
    call.on("data", (m: T) => {
      this.items.push(m);
      this.notify();
    });
    call.on("error", (err: grpc.ServiceError) => {
      this.error = err;
      this.notify();
    });
    call.on("status", (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) this.done = true;
      this.notify();
    });
  }

  get ended(): boolean {
    return this.done || this.error !== undefined;
  }

  /** Resolves when pred holds; rejects (with what was received) after timeoutMs. */
  until(pred: (s: this) => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    if (pred(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred(this)) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; got ${this.received()}, error ${this.error?.code ?? "none"}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Cancels the call and waits until grpc-js reports the end (CANCELLED). */
  async cancel(): Promise<void> {
    if (this.ended) return;
    this.call.cancel();
    await this.until((s) => s.ended, "the cancelled call to end");
  }

  /** What was received so far, for the message of a timeout. */
  protected received(): string {
    return `${this.items.length} messages`;
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** The error a stream ends with; fails when it ends OK or not at all. */
export async function streamError(s: StreamReader<unknown>): Promise<grpc.ServiceError> {
  await s.until((x) => x.ended, "the stream to end");
  if (!s.error) throw new Error("expected the stream to fail");
  return s.error;
}
