/**
 * Proto enums <-> domain: every value the generated descriptors list (UNSPECIFIED aside)
 * maps to a domain value and back to itself, and every domain value reaches a distinct
 * proto value. Driven by the descriptors, so a value added to a .proto fails here until
 * it is mapped; the domain lists are Records over the domain unions, so a value added to
 * the core fails to compile here until it is listed.
 */
import type { DescEnum } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { AgentStatusSchema, IdleActionSchema, SandboxPolicySchema } from "../../gen/agentorch/v1/agent_pb.js";
import { EventTypeSchema } from "../../gen/agentorch/v1/events_pb.js";
import { TaskPrioritySchema, TaskStateSchema } from "../../gen/agentorch/v1/task_pb.js";
import {
  agentStatusFromProto,
  agentStatusToProto,
  idleActionFromProto,
  idleActionToProto,
  eventTypeToProto,
  policyFromProto,
  policyToProto,
  taskPriorityFromProto,
  taskPriorityToProto,
  taskStateFromProto,
  taskStateToProto,
} from "../../src/api/enums.js";
import type { AgentStatus, IdleAction, SandboxPolicy } from "../../src/core/agent.js";
import type { TaskPriority, TaskState } from "../../src/core/tasks/task.js";
import type { WatchItemType } from "../../src/core/watch.js";
import { thrown } from "../support/errors.js";

/** Every domain value of a union, checked complete by the compiler. */
const domainValues = <T extends string>(all: Record<T, true>) => Object.keys(all) as T[];

const STATUSES = domainValues<AgentStatus>({ idle: true, starting: true, running: true, paused: true, stopping: true, failed: true, terminated: true });
const POLICIES = domainValues<SandboxPolicy>({ container: true, container_direct: true });
const IDLE_ACTIONS = domainValues<IdleAction>({ stop: true, pause: true });
const PRIORITIES = domainValues<TaskPriority>({ low: true, normal: true, high: true, critical: true });
const STATES = domainValues<TaskState>({ submitted: true, working: true, completed: true, failed: true, canceled: true, rejected: true });
const EVENT_TYPES = domainValues<WatchItemType>({ added: true, changed: true, removed: true, bookmark: true });

/** The numbers of an enum's values other than UNSPECIFIED (always 0 in this API). */
function specified(desc: DescEnum): { name: string; number: number }[] {
  const values = desc.values.filter((v) => v.number !== 0);
  expect(values.length).toBeGreaterThan(0);
  expect(desc.values.find((v) => v.number === 0)?.name).toMatch(/_UNSPECIFIED$/);
  return values;
}

const cases = [
  { desc: AgentStatusSchema, domain: STATUSES, toProto: agentStatusToProto, fromProto: agentStatusFromProto },
  { desc: SandboxPolicySchema, domain: POLICIES, toProto: policyToProto, fromProto: policyFromProto },
  { desc: IdleActionSchema, domain: IDLE_ACTIONS, toProto: idleActionToProto, fromProto: idleActionFromProto },
  { desc: TaskPrioritySchema, domain: PRIORITIES, toProto: taskPriorityToProto, fromProto: taskPriorityFromProto },
  { desc: TaskStateSchema, domain: STATES, toProto: taskStateToProto, fromProto: taskStateFromProto },
] as { desc: DescEnum; domain: string[]; toProto: (d: string) => number; fromProto: (n: number) => string | undefined }[];

describe.each(cases)("$desc.typeName", ({ desc, domain, toProto, fromProto }) => {
  it("maps each proto value to a domain value and back to itself", () => {
    for (const value of specified(desc)) {
      const d = fromProto(value.number);
      expect(domain, value.name).toContain(d);
      expect(toProto(d!), value.name).toBe(value.number);
    }
  });

  it("maps each domain value to a distinct proto value that the descriptor lists", () => {
    const numbers = domain.map(toProto);
    expect(new Set(numbers).size).toBe(domain.length);
    for (const n of numbers) expect(specified(desc).map((v) => v.number)).toContain(n);
  });
});

describe("EventType", () => {
  it("is reached by exactly one watch item type per proto value", () => {
    const produced = EVENT_TYPES.map(eventTypeToProto);
    expect(new Set(produced).size).toBe(EVENT_TYPES.length);
    expect(produced.sort()).toEqual(specified(EventTypeSchema).map((v) => v.number).sort());
  });
});

describe("UNSPECIFIED and unknown numbers", () => {
  it("read UNSPECIFIED as no filter (status, state), the default (policy) or NORMAL (priority)", () => {
    expect(agentStatusFromProto(0)).toBeUndefined();
    expect(taskStateFromProto(0)).toBeUndefined();
    expect(policyFromProto(0)).toBeUndefined();
    expect(taskPriorityFromProto(0)).toBe("normal");
  });

  it("refuse a number this build does not know as INVALID_ARGUMENT naming the field", () => {
    for (const [fn, field] of [
      [() => agentStatusFromProto(42 as never), "status"],
      [() => taskStateFromProto(42 as never, "filter.state"), "filter.state"],
      [() => taskPriorityFromProto(-1 as never), "priority"],
    ] as const) {
      const err = thrown(fn);
      expect(err.kind).toBe("invalid_argument");
      expect(err.message).toContain(field);
      expect(err.details).toMatchObject({ field });
    }
  });

  it("pass an unknown policy on as 'unknown' for the core to refuse", () => {
    expect(policyFromProto(99 as never)).toBe("unknown");
  });
});
