/**
 * LifecycleService handlers for tasks and their limits: a thin layer that maps the
 * request to the core's terms, calls TaskService (passing the call's signal), and maps
 * the answer back. Codes are decided only in ./errors.ts. The A2A RPCs are implemented
 * in ./a2a-handlers.ts and merged in; until they are given connect answers UNIMPLEMENTED.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { LifecycleService, WatchTasksResponseSchema } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { invalidArgument } from "../core/errors.js";
import type { Logger } from "../core/ports.js";
import type { TaskService } from "../core/tasks/task-service.js";
import { isTerminal } from "../core/tasks/task.js";
import { eventTypeToProto, taskStateFromProto } from "./enums.js";
import { int64ToNumber } from "./proto-scalars.js";
import { requesterOf } from "./requester.js";
import { withErrors } from "./errors.js";
import { isBinaryCall, SharedResponses } from "./shared-response.js";
import { streamCutOff } from "./interceptors.js";
import { traceOfHeaders } from "./trace.js";
import {
  lifecycleConfigPatchFromProto,
  lifecycleConfigToProto,
  submitTaskInputFromProto,
  taskToProto,
} from "./task-mapping.js";
type LifecycleImpl = ServiceImpl<typeof LifecycleService>;

/** The part of the core's TaskService these handlers use. */
export type TasksApi = Pick<
  TaskService,
  "submit" | "get" | "list" | "cancel" | "retry" | "reapZombies" | "getConfig" | "updateConfig" | "watch"
>;

/** The RPCs implemented elsewhere (src/api/a2a-handlers.ts). */
const A2A_METHODS = [
  "publishAgentCard",
  "getAgentCard",
  "listAgentCards",
  "sendMessage",
  "streamMessages",
  "ackMessages",
  "sendAndWait",
] as const satisfies readonly (keyof LifecycleImpl)[];

export interface LifecycleServiceDeps {
  tasks: TasksApi;
  logger: Logger;
  /** The A2A handlers, merged in as given; missing ones answer UNIMPLEMENTED. */
  a2a?: Partial<LifecycleImpl>;
}

/** WatchTasks responses, shared by every watcher of a change (see SharedResponses). */
const taskEvents = new SharedResponses(WatchTasksResponseSchema);

/** Creates the LifecycleService implementation over the core's task service. */
export function createLifecycleService(deps: LifecycleServiceDeps): Partial<LifecycleImpl> {
  const { tasks } = deps;

  const impl: Omit<LifecycleImpl, (typeof A2A_METHODS)[number]> = {
    async submitTask(req, ctx) {
      const traceparent = traceOfHeaders(ctx.requestHeader)?.traceparent;
      return { task: taskToProto(await tasks.submit({ ...submitTaskInputFromProto(req), traceparent, requester: requesterOf(ctx) })) };
    },
    getTask(req) {
      return { task: taskToProto(tasks.get(req.taskId)) };
    },
    listTasks(req) {
      const page = tasks.list({
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        state: taskStateFromProto(req.state),
        agentId: req.agentId,
      });
      return { tasks: page.tasks.map(taskToProto), nextPageToken: page.nextPageToken, revision: BigInt(page.revision) };
    },
    async cancelTask(req) {
      return { task: taskToProto(await tasks.cancel(req.taskId)) };
    },
    async retryTask(req, ctx) {
      return { task: taskToProto(await tasks.retry(req.taskId, [...req.gaps], requesterOf(ctx))) };
    },
    async *watchTask(req, ctx) {
      // Unknown or malformed id: an error before any message.
      const taskId = tasks.get(req.taskId).taskId;
      const events = tasks.watch({ ids: [taskId], resumeAfter: 0, sendInitialState: true, signal: ctx.signal, onCutOff: streamCutOff(ctx) });
      for await (const item of events) {
        if (item.entity === undefined) continue; // bookmarks: every message of this stream carries the task
        yield { task: taskToProto(item.entity), revision: BigInt(item.revision) };
        if (isTerminal(item.entity.state)) return;
      }
      // The watch ended before the task did: the call was cancelled or the server is shutting
      // down. Say so, rather than ending OK as if the task had finished.
      ctx.signal.throwIfAborted();
    },
    async *watchTasks(req, ctx) {
      const events = tasks.watch({
        ids: req.taskIds,
        agentId: req.agentId,
        resumeAfter: int64ToNumber(req.resumeAfterRevision, "resume_after_revision"),
        sendInitialState: req.sendInitialState,
        signal: ctx.signal,
        onCutOff: streamCutOff(ctx),
      });
      const binary = isBinaryCall(ctx.requestHeader);
      for await (const item of events) {
        yield taskEvents.get(item.entity, `${item.revision}:${item.type}`, binary, () =>
          create(WatchTasksResponseSchema, {
            event: { type: eventTypeToProto(item.type), revision: BigInt(item.revision), task: item.entity && taskToProto(item.entity) },
          }),
        );
      }
      // Ended by a cancel or a shutdown (UNAVAILABLE), never OK: see watchAgents.
      ctx.signal.throwIfAborted();
    },
    async reapZombies(_req, ctx) {
      return { taskIds: await tasks.reapZombies(ctx.signal) };
    },
    getLifecycleConfig() {
      return { config: lifecycleConfigToProto(tasks.getConfig()) };
    },
    updateLifecycleConfig(req) {
      if (req.config === undefined) throw invalidArgument("config is required", { field: "config" });
      const paths = req.updateMask?.paths ?? [];
      const patch = lifecycleConfigPatchFromProto(req.config, paths, tasks.getConfig());
      return { config: lifecycleConfigToProto(tasks.updateConfig(patch, paths)) };
    },
  };

  // Only the A2A methods are taken from deps.a2a, so it cannot replace a task handler by accident;
  // the ones it lacks are left out, for connect to answer UNIMPLEMENTED.
  const a2a = Object.fromEntries(A2A_METHODS.flatMap((name) => (deps.a2a?.[name] ? [[name, deps.a2a[name]]] : [])));
  const all: Partial<LifecycleImpl> = { ...impl, ...a2a };
  // Wrapping twice is harmless (a ConnectError passes through), so merged handlers get the same mapping.
  return withErrors(LifecycleService, all, deps.logger);
}
