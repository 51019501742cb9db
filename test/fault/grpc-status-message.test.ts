/**
 * Status messages reach gRPC clients intact. connect-es percent-encodes grpc-message with
 * encodeURIComponent and @grpc/grpc-js decodes it with decodeURI, so before the fix a Node
 * client read "unix%3A%2F%2F%2Fvar%2Frun%2Fdocker.sock" for "unix:///var/run/docker.sock"
 * (every ':', '/', ',', '?', '=' and '@' stayed escaped). The server now encodes as the gRPC
 * spec says (only non-printable bytes and '%'), which every client decodes the same.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeGrpcMessage } from "../../src/server/grpc-message.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { attempt, type Clients, connect } from "./support/grpc.js";

describe("grpc-message encoding", () => {
  it("escapes only bytes outside printable ASCII, and '%'", () => {
    expect(encodeGrpcMessage("unix:///var/run/docker.sock, a=b?c@d")).toBe("unix:///var/run/docker.sock, a=b?c@d");
    expect(encodeGrpcMessage("100% é\n")).toBe("100%25 %C3%A9%0A");
  });

  describe("seen by @grpc/grpc-js", () => {
    let server: TestServer;
    let c: Clients;
    beforeAll(async () => {
      // No engine needed: the status of a validation error is all this looks at.
      server = await startTestServer({ env: { DOCKER_HOST: "unix:///nonexistent/agentorch-no-engine.sock" } });
      c = connect(server.address);
    });
    afterAll(async () => {
      c.close();
      await server.stop();
    });

    it("reads ':', '/', quotes and non-ASCII as they were written", async () => {
      const out = await attempt(c.orch, "GetAgent", { agent_id: "a/b:c,d=é" });
      expect(out.ok).toBe(false);
      if (!out.ok) expect(out.details).toBe(`agent_id must be 1-64 ASCII letters, digits or '-' (got "a/b:c,d=é")`);
    });
  });
});
