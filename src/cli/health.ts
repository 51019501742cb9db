/**
 * `agentorch health`: whether the service (and the container engine behind it) serves,
 * from grpc.health.v1, with an exit code a probe or script can use: 0 SERVING, 6 not.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import {
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthListResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { HealthListResponse } from "../../gen/grpc/health/v1/health_pb.js";
import { contextOf } from "./context.js";
import type { Ctx } from "./context.js";
import { EXIT } from "./errors.js";
import { paintState, printJson, printTable } from "./output.js";

function statusName(s: ServingStatus): string {
  return ServingStatus[s] ?? String(s);
}

/** Every service's status: Health.List, or Health.Check of the server where List is not served. */
async function listStatuses(ctx: Ctx): Promise<HealthListResponse> {
  try {
    return await ctx.clients.health.list({}, ctx.unary);
  } catch (err) {
    if (!(err instanceof ConnectError) || err.code !== Code.Unimplemented) throw err;
    const server = await ctx.clients.health.check({ service: "" }, ctx.unary);
    return create(HealthListResponseSchema, { statuses: { "": server } });
  }
}

/** Adds `health` to the root. */
export function addHealthCommand(root: Command): void {
  root
    .command("health")
    .description("check that the service serves (exit 0 when SERVING, 6 when not or unreachable)")
    .option("--service <name>", 'check one service: "" (the server), agentorch.v1.AgentOrchestratorService, docker')
    .action(async (o: { service?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      if (o.service !== undefined) {
        const res = await ctx.clients.health.check({ service: o.service }, ctx.unary);
        if (ctx.json) printJson(HealthCheckResponseSchema, res);
        else process.stdout.write(`${paintState(statusName(res.status))}\n`);
        process.exitCode = res.status === ServingStatus.SERVING ? EXIT.ok : EXIT.unavailable;
        return;
      }
      const list = await listStatuses(ctx);
      const server = list.statuses[""]?.status ?? ServingStatus.UNKNOWN;
      if (ctx.json) printJson(HealthListResponseSchema, list);
      else {
        const rows = Object.entries(list.statuses)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([name, r]) => [name === "" ? "(server)" : name, paintState(statusName(r.status))]);
        process.stdout.write(`agentorch at ${ctx.addr}: ${paintState(statusName(server))}\n`);
        printTable(["SERVICE", "STATUS"], rows);
      }
      process.exitCode = server === ServingStatus.SERVING ? EXIT.ok : EXIT.unavailable;
    });
}
