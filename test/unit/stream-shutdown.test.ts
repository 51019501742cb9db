/**
 * withStreamShutdown: at shutdown a streaming handler's signal fires (so the stream can
 * end), a unary call in flight is left to finish, and an omitted method answers
 * UNIMPLEMENTED, as connect's own router would.
 */
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { withStreamShutdown } from "../../src/api/stream-shutdown.js";

describe("withStreamShutdown", () => {
  it("aborts streaming handlers at shutdown and leaves unary calls alone", async () => {
    const shutdown = new AbortController();
    let release: (() => void) | undefined;
    const transport = createRouterTransport((router) => {
      withStreamShutdown(router, shutdown.signal).service(Health, {
        async check(_req, ctx) {
          await new Promise<void>((r) => (release = r));
          return { status: ctx.signal.aborted ? Status.NOT_SERVING : Status.SERVING };
        },
        async *watch(_req, ctx) {
          yield { status: Status.SERVING };
          await new Promise((r) => ctx.signal.addEventListener("abort", r));
        },
      });
    });
    const client = createClient(Health, transport);

    const seen: Status[] = [];
    const stream = (async () => {
      for await (const res of client.watch({})) seen.push(res.status);
    })();
    const unary = client.check({});
    while (release === undefined || seen.length === 0) await new Promise((r) => setTimeout(r, 5));

    shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
    await stream; // ends: the handler saw its signal fire
    expect(seen).toEqual([Status.SERVING]);

    release();
    expect((await unary).status).toBe(Status.SERVING); // its signal never fired

    await expect(client.list({})).rejects.toMatchObject({ code: Code.Unimplemented });
  });

  it("answers UNIMPLEMENTED for an omitted streaming method, as connect's own router would", async () => {
    const transport = createRouterTransport((router) => {
      withStreamShutdown(router, new AbortController().signal).service(Health, {});
    });
    const drain = async () => {
      for await (const _ of createClient(Health, transport).watch({})) throw new Error("no message expected");
    };
    await expect(drain()).rejects.toMatchObject({ code: Code.Unimplemented });
  });
});
