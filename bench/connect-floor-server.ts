/**
 * The connect-node floor: the smallest connect-node server of agentorch's GetAgent, with
 * none of agentorch's code (no store, no interceptor, no request log, no listener
 * sniffing: a plain http2 server). It answers from memory with the same agents (--agents
 * FILE: base64 GetAgentResponse messages as agentorch serialized them). The gap between
 * it and the bare grpc-js baseline is connect-node's; the gap between it and agentorch is ours.
 *
 * Run as its own process: node --import tsx bench/connect-floor-server.ts --agents FILE
 * It prints "listening PORT" on stdout.
 */
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import type net from "node:net";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AgentOrchestratorService, GetAgentResponseSchema } from "../gen/agentorch/v1/orchestrator_service_pb.js";
import type { GetAgentResponse } from "../gen/agentorch/v1/orchestrator_service_pb.js";

const args = process.argv.slice(2);
const file = args[args.indexOf("--agents") + 1];
const answers = new Map<string, GetAgentResponse>();
if (args.includes("--agents") && file) {
  for (const b64 of JSON.parse(readFileSync(file, "utf8")) as string[]) {
    const res = fromBinary(GetAgentResponseSchema, Buffer.from(b64, "base64"));
    answers.set(res.agent!.agentId, res);
  }
}

const handler = connectNodeAdapter({
  routes(router) {
    router.service(AgentOrchestratorService, {
      getAgent(req) {
        const res = answers.get(req.agentId);
        if (!res) throw new ConnectError(`agent "${req.agentId}" not found`, Code.NotFound);
        return res;
      },
    });
  },
  grpc: true,
  grpcWeb: true,
  connect: true,
});
const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, handler);
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`);
});
const stop = () => process.exit(0);
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
