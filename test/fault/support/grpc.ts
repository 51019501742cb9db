/**
 * @grpc/grpc-js clients made from the .proto files (they share no code with the server;
 * built, called and streamed by test/support/grpc.ts), and what the fault suites need on top: a unary call's
 * outcome as a value (OK with the response, or the status code) stamped with the time it
 * arrived, so a test can tell answers before a kill from lost ones; listing every page;
 * health. Messages are plain objects with the proto's field names.
 */
import * as grpc from "@grpc/grpc-js";
import { grpcClients, rpc } from "../../support/grpc.js";

/** The status names, for messages. */
export const STATUS_NAME: Record<number, string> = Object.fromEntries(
  Object.entries(grpc.status)
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => [v as number, k]),
);

export interface Clients {
  orch: grpc.Client;
  life: grpc.Client;
  health: grpc.Client;
  close(): void;
}

/** One channel per service client (test/support/grpc.ts's grpcClients), with fast reconnects. */
export function connect(address: string, options: grpc.ChannelOptions = {}): Clients {
  const channel: grpc.ChannelOptions = {
    // Fail fast instead of waiting for a server that is down (tests kill it on purpose).
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 500,
    ...options,
  };
  const clients = grpcClients(address, { channel });
  return { orch: clients.agents, life: clients.lifecycle, health: clients.health, close: () => clients.close() };
}

/** A unary call (test/support/grpc.ts's rpc) whose response reads as a record; rejects with the grpc-js ServiceError. */
export function unary<T = Record<string, unknown>>(client: grpc.Client, name: string, req: object, deadlineMs = 30_000): Promise<T> {
  return rpc<T>(client, name, req, { deadlineMs });
}

export type Outcome<T> = { ok: true; value: T; at: number } | { ok: false; code: number; details: string; at: number };

/** A unary call's outcome as a value, stamped with the time it arrived. */
export async function attempt<T = Record<string, unknown>>(client: grpc.Client, name: string, req: object, deadlineMs = 30_000): Promise<Outcome<T>> {
  try {
    const value = await unary<T>(client, name, req, deadlineMs);
    return { ok: true, value, at: Date.now() };
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { ok: false, code: typeof e.code === "number" ? e.code : grpc.status.UNKNOWN, details: String(e.details ?? e.message), at: Date.now() };
  }
}

/** How a server stream ended: its status code and details (OK included). */
export function streamEnd(stream: grpc.ClientReadableStream<unknown>): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (code: number, details: string) => {
      if (settled) return;
      settled = true;
      resolve({ code, details });
    };
    stream.on("error", (err: grpc.ServiceError) => finish(err.code ?? grpc.status.UNKNOWN, String(err.details ?? err.message)));
    stream.on("status", (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) finish(s.code, s.details);
    });
  });
}

/** Every page of a List RPC, concatenated; also the revision of the last page. */
export async function listAll<T>(client: grpc.Client, name: string, field: string, req: object = {}): Promise<{ items: T[]; revision: number }> {
  const items: T[] = [];
  let pageToken = "";
  let revision = 0;
  for (;;) {
    const res = await unary<Record<string, unknown>>(client, name, { ...req, page_size: 1000, page_token: pageToken });
    items.push(...((res[field] as T[]) ?? []));
    revision = Number(res.revision ?? 0);
    pageToken = String(res.next_page_token ?? "");
    if (pageToken === "") return { items, revision };
  }
}

/** The health status ("SERVING", "NOT_SERVING", …) of a service name. */
export async function healthOf(c: Clients, service: string): Promise<string> {
  const res = await unary<{ status: string }>(c.health, "Check", { service }, 5_000);
  return res.status;
}

export { grpc };
