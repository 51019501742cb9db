/**
 * Proto enum <-> domain string tables, one per enum, each written once and inverted one
 * way. UNSPECIFIED is never in a table: each reader below says what it means there
 * (no filter, the default), and what a number this build does not know becomes.
 */
import { AgentStatus as AgentStatusProto, IdleAction as IdleActionProto, SandboxPolicy as SandboxPolicyProto } from "../../gen/agentorch/v1/agent_pb.js";
import { EventType } from "../../gen/agentorch/v1/events_pb.js";
import { TaskPriority as TaskPriorityProto, TaskState as TaskStateProto } from "../../gen/agentorch/v1/task_pb.js";
import type { AgentStatus, IdleAction, SandboxPolicy } from "../core/agent.js";
import { invalidArgument } from "../core/errors.js";
import type { TaskPriority, TaskState } from "../core/tasks/task.js";
import type { WatchItemType } from "../core/watch.js";

const STATUS_TO_PROTO: Readonly<Record<AgentStatus, AgentStatusProto>> = {
  idle: AgentStatusProto.IDLE,
  starting: AgentStatusProto.STARTING,
  running: AgentStatusProto.RUNNING,
  paused: AgentStatusProto.PAUSED,
  stopping: AgentStatusProto.STOPPING,
  failed: AgentStatusProto.FAILED,
  terminated: AgentStatusProto.TERMINATED,
};
const STATUS_FROM_PROTO = invert(STATUS_TO_PROTO);

const POLICY_TO_PROTO: Readonly<Record<SandboxPolicy, SandboxPolicyProto>> = {
  container: SandboxPolicyProto.CONTAINER,
  container_direct: SandboxPolicyProto.CONTAINER_DIRECT,
};
const POLICY_FROM_PROTO = invert(POLICY_TO_PROTO);

const IDLE_ACTION_TO_PROTO: Readonly<Record<IdleAction, IdleActionProto>> = {
  stop: IdleActionProto.STOP,
  pause: IdleActionProto.PAUSE,
};
const IDLE_ACTION_FROM_PROTO = invert(IDLE_ACTION_TO_PROTO);

const PRIORITY_TO_PROTO: Readonly<Record<TaskPriority, TaskPriorityProto>> = {
  low: TaskPriorityProto.LOW,
  normal: TaskPriorityProto.NORMAL,
  high: TaskPriorityProto.HIGH,
  critical: TaskPriorityProto.CRITICAL,
};
const PRIORITY_FROM_PROTO = invert(PRIORITY_TO_PROTO);

const STATE_TO_PROTO: Readonly<Record<TaskState, TaskStateProto>> = {
  submitted: TaskStateProto.SUBMITTED,
  working: TaskStateProto.WORKING,
  completed: TaskStateProto.COMPLETED,
  failed: TaskStateProto.FAILED,
  canceled: TaskStateProto.CANCELED,
  rejected: TaskStateProto.REJECTED,
};
const STATE_FROM_PROTO = invert(STATE_TO_PROTO);

const EVENT_TYPE_TO_PROTO: Readonly<Record<WatchItemType, EventType>> = {
  added: EventType.ADDED,
  changed: EventType.CHANGED,
  removed: EventType.REMOVED,
  bookmark: EventType.BOOKMARK,
};

function invert<K extends string, V extends number>(table: Readonly<Record<K, V>>): ReadonlyMap<number, K> {
  return new Map(Object.entries(table).map(([k, v]) => [v as number, k as K]));
}

/** The proto enum value of a domain status. */
export function agentStatusToProto(status: AgentStatus): AgentStatusProto {
  return STATUS_TO_PROTO[status];
}

/** A status filter: UNSPECIFIED means none; a number this build does not know is INVALID_ARGUMENT. */
export function agentStatusFromProto(status: AgentStatusProto, field = "status"): AgentStatus | undefined {
  if (status === AgentStatusProto.UNSPECIFIED) return undefined;
  const domain = STATUS_FROM_PROTO.get(status);
  if (domain === undefined) throw invalidArgument(`${field} is not a known AgentStatus (got ${status})`, { field });
  return domain;
}

/** The proto enum value of a domain sandbox policy. */
export function policyToProto(policy: SandboxPolicy): SandboxPolicyProto {
  return POLICY_TO_PROTO[policy];
}

/** UNSPECIFIED: the default; a number this build does not know: "unknown", which the core refuses. */
export function policyFromProto(policy: SandboxPolicyProto): SandboxPolicy | "unknown" | undefined {
  if (policy === SandboxPolicyProto.UNSPECIFIED) return undefined;
  return POLICY_FROM_PROTO.get(policy) ?? "unknown";
}

/** The proto enum value of a domain idle action (absent in agents stored before it existed: stop). */
export function idleActionToProto(action: IdleAction | undefined): IdleActionProto {
  return IDLE_ACTION_TO_PROTO[action ?? "stop"];
}

/** UNSPECIFIED means STOP; a number this build does not know is INVALID_ARGUMENT. */
export function idleActionFromProto(action: IdleActionProto, field = "config.lifecycle.idle_action"): IdleAction {
  if (action === IdleActionProto.UNSPECIFIED) return "stop";
  const domain = IDLE_ACTION_FROM_PROTO.get(action);
  if (domain === undefined) throw invalidArgument(`${field} is not a known IdleAction (got ${action}); known: IDLE_ACTION_STOP, IDLE_ACTION_PAUSE`, { field });
  return domain;
}

/** The proto enum value of a domain priority. */
export function taskPriorityToProto(priority: TaskPriority): TaskPriorityProto {
  return PRIORITY_TO_PROTO[priority];
}

/** UNSPECIFIED means NORMAL; a number this build does not know is INVALID_ARGUMENT. */
export function taskPriorityFromProto(priority: TaskPriorityProto, field = "priority"): TaskPriority {
  if (priority === TaskPriorityProto.UNSPECIFIED) return "normal";
  const domain = PRIORITY_FROM_PROTO.get(priority);
  if (domain === undefined) throw invalidArgument(`${field} is not a known TaskPriority (got ${priority})`, { field });
  return domain;
}

/** The proto enum value of a domain state. */
export function taskStateToProto(state: TaskState): TaskStateProto {
  return STATE_TO_PROTO[state];
}

/** A state filter: UNSPECIFIED means none; a number this build does not know is INVALID_ARGUMENT. */
export function taskStateFromProto(state: TaskStateProto, field = "state"): TaskState | undefined {
  if (state === TaskStateProto.UNSPECIFIED) return undefined;
  const domain = STATE_FROM_PROTO.get(state);
  if (domain === undefined) throw invalidArgument(`${field} is not a known TaskState (got ${state})`, { field });
  return domain;
}

/** A watch item's type as the proto EventType (shared by agent and task watches). */
export function eventTypeToProto(type: WatchItemType): EventType {
  return EVENT_TYPE_TO_PROTO[type];
}
