/**
 * The crash suite's workload and its model of what must survive. Actors drive the real
 * process over grpc-js — registrations, starts, stops, task submissions (on registered
 * agents and on templates), message sends — each on its own agents, so the expected
 * outcome of every call is known. Every OK is recorded; a call with no answer when the
 * process is killed is "in flight", and after the restart either of its outcomes is
 * allowed, but nothing else.
 *
 * After each restart, verify() checks the registry, the tasks, the mailboxes and the
 * engine against the model, then adopts what it saw as the new model.
 */
import type Dockerode from "dockerode";
import { TEST_IMAGE } from "../../support/docker.js";
import { rng } from "./fault-config.js";
import { serverStream } from "../../support/grpc.js";
import { attempt, type Clients, type Outcome, STATUS_NAME, unary } from "./grpc.js";
import { type AgentView, containersOf, containerViolations, listAgents, settle, status, type TaskView, TERMINAL_TASK_STATES } from "./world.js";

type Op = "register" | "start" | "stop" | "submit" | "send";

interface AgentModel {
  id: string;
  kind: "svc" | "task";
  /** Last known AGENT_STATUS_*, or "absent" until a registration is acknowledged. */
  status: string;
  containerId: string;
  busy: boolean;
  /** The call on this agent that had no answer when the process was killed. */
  pending?: { op: Op; prevStatus: string; prevContainer: string };
  lastTaskId?: string;
}

interface TaskModel {
  taskId: string;
  agentId: string;
  ephemeral: boolean;
}

interface MessageModel {
  to: string;
  sequence: number;
  messageId: string;
}

export interface CrashFigures {
  acknowledged: Record<Op, number>;
  inFlightAtKill: Record<Op, number>;
  tasksFinished: Record<string, number>;
  messagesVerified: number;
  /** Time spent in verify(), by part (ms, summed). */
  verifyMs: { settle: number; check: number; mailboxes: number };
}

const zero = (): Record<Op, number> => ({ register: 0, start: 0, stop: 0, submit: 0, send: 0 });
const MAX_RUNNING_SVC = 5;
const MAX_AGENTS = 500;
const MAX_ROUND_TASKS = 6;

export class CrashWorkload {
  readonly agents = new Map<string, AgentModel>();
  readonly tasks = new Map<string, TaskModel>();
  readonly messages: MessageModel[] = [];
  readonly unexpected: string[] = [];
  readonly figures: CrashFigures = { acknowledged: zero(), inFlightAtKill: zero(), tasksFinished: {}, messagesVerified: 0, verifyMs: { settle: 0, check: 0, mailboxes: 0 } };
  private pendingEphemeral = 0;
  private serial = 0;
  private killAt = Number.POSITIVE_INFINITY;
  private killed = false;
  private readonly r: ReturnType<typeof rng>;
  /** Tasks already counted in the figures. */
  private readonly counted = new Set<string>();
  /** Lists tasks from the last page the previous round saw, not the whole history. */
  private readonly taskCursor = new TaskCursor();
  /** Per receiver: every sequence up to this one has been verified (gap-free, the acknowledged ones present). */
  private readonly mailboxVerified = new Map<string, number>();

  constructor(
    private readonly prefix: string,
    seed: number,
  ) {
    this.r = rng(seed);
  }

  /** Runs the actors until kill() is called; resolves once every call has its outcome. */
  async run(c: Clients): Promise<void> {
    this.killed = false;
    this.killAt = Number.POSITIVE_INFINITY;
    const actor = async (step: () => Promise<void>) => {
      while (!this.killed) {
        await step();
        await new Promise((res) => setTimeout(res, this.r.int(0, 40)));
      }
    };
    await Promise.all([
      actor(() => this.registerStep(c)),
      actor(() => this.startStopStep(c)),
      actor(() => this.startStopStep(c)),
      actor(() => this.taskStep(c)),
      actor(() => this.sendStep(c)),
      actor(() => this.sendStep(c)),
    ]);
  }

  /** Marks the moment of the kill: answers after it may be lost replies. Call just before SIGKILL. */
  markKill(): void {
    this.killAt = Date.now();
    this.killed = true;
  }

  // ---------------------------------------------------------------- actors

  private async registerStep(c: Clients): Promise<void> {
    if (this.agents.size >= MAX_AGENTS) {
      await new Promise((res) => setTimeout(res, 100));
      return;
    }
    const kind = this.r.chance(0.3) ? "task" : "svc";
    const id = `${this.prefix}-${kind}-${this.serial++}`;
    const m: AgentModel = { id, kind, status: "absent", containerId: "", busy: true };
    this.agents.set(id, m);
    // Short tasks finish while the service is down; long ones outlive the restart (the
    // compiled build restarts in 1-3 s here) and are adopted. Every task must end before a
    // round is verified, so the long ones are only as long as they need to be.
    const seconds = (this.r.chance(0.5) ? 0.1 + this.r.next() * 0.9 : 2 + this.r.next() * 2).toFixed(2);
    const command = kind === "svc" ? ["sleep", "3600"] : ["sh", "-c", `sleep ${seconds}; echo done`];
    const out = await attempt(c.orch, "RegisterAgent", { agent: { agent_id: id, image: TEST_IMAGE, command } });
    this.settleCall(m, "register", out, () => {
      m.status = status("idle");
    });
  }

  private async startStopStep(c: Clients): Promise<void> {
    const svc = [...this.agents.values()].filter((a) => a.kind === "svc" && !a.busy && a.status !== "absent");
    const running = svc.filter((a) => a.status === status("running")).length;
    const candidates = svc.filter((a) => a.status === status("running") || running < MAX_RUNNING_SVC);
    if (candidates.length === 0) {
      await new Promise((res) => setTimeout(res, 50));
      return;
    }
    const m = this.r.pick(candidates);
    m.busy = true;
    if (m.status === status("running")) {
      const out = await attempt(c.orch, "StopAgent", { agent_id: m.id });
      this.settleCall(m, "stop", out, () => {
        m.status = status("idle");
        m.containerId = "";
      });
    } else {
      const out = await attempt<{ agent: AgentView }>(c.orch, "StartAgent", { agent_id: m.id });
      this.settleCall(m, "start", out, (v) => {
        m.status = status("running");
        m.containerId = v.agent.container_id;
      });
    }
  }

  private async taskStep(c: Clients): Promise<void> {
    // Every task must end before a round is verified; on a loaded machine (container starts of
    // 5-10 s) an unbounded backlog made that wait the longest part of a round, and could outrun
    // the settle limit. A round submits tasks while fewer than MAX_ROUND_TASKS are acknowledged.
    if (this.tasks.size >= MAX_ROUND_TASKS) {
      await new Promise((res) => setTimeout(res, 100));
      return;
    }
    if (this.r.chance(0.3)) {
      // A task on an ephemeral agent made from a template.
      this.pendingEphemeral++;
      const seconds = (0.1 + this.r.next() * 0.8).toFixed(2);
      const out = await attempt<{ task: TaskView }>(c.life, "SubmitTask", {
        directive: { goal: "crash test (template)" },
        template: { image: TEST_IMAGE, command: ["sh", "-c", `sleep ${seconds}; echo done`] },
      });
      if (out.ok) {
        this.pendingEphemeral--;
        this.figures.acknowledged.submit++;
        this.tasks.set(out.value.task.task_id, { taskId: out.value.task.task_id, agentId: out.value.task.agent_id, ephemeral: true });
      } else if (out.at >= this.killAt) {
        this.figures.inFlightAtKill.submit++;
      } else {
        this.pendingEphemeral--;
        this.unexpected.push(`SubmitTask(template): ${STATUS_NAME[out.code]} ${out.details}`);
      }
      return;
    }
    const free = [...this.agents.values()].filter(
      (a) => a.kind === "task" && !a.busy && (a.status === status("idle") || a.status === status("failed")),
    );
    if (free.length === 0) {
      await new Promise((res) => setTimeout(res, 50));
      return;
    }
    const m = this.r.pick(free);
    m.busy = true;
    if (m.lastTaskId !== undefined) {
      const last = await attempt<{ task: TaskView }>(c.life, "GetTask", { task_id: m.lastTaskId });
      if (!last.ok || !TERMINAL_TASK_STATES.has(last.value.task.state)) {
        m.busy = false;
        return;
      }
    }
    const out = await attempt<{ task: TaskView }>(c.life, "SubmitTask", { directive: { goal: "crash test" }, agent_id: m.id });
    this.settleCall(m, "submit", out, (v) => {
      this.tasks.set(v.task.task_id, { taskId: v.task.task_id, agentId: m.id, ephemeral: false });
      m.lastTaskId = v.task.task_id;
    });
  }

  private async sendStep(c: Clients): Promise<void> {
    const known = [...this.agents.values()].filter((a) => a.status !== "absent" && a.pending?.op !== "register");
    if (known.length === 0) {
      await new Promise((res) => setTimeout(res, 50));
      return;
    }
    const from = this.r.pick(known);
    const to = this.r.pick(known);
    const out = await attempt<{ message_id: string; sequence: string }>(c.life, "SendMessage", {
      message: { from_agent_id: from.id, to_agent_id: to.id, status_update: { task_id: "crash", progress: this.r.int(0, 100), message: `n${this.serial++}` } },
    });
    if (out.ok) {
      this.figures.acknowledged.send++;
      this.messages.push({ to: to.id, sequence: Number(out.value.sequence), messageId: out.value.message_id });
    } else if (out.at >= this.killAt) this.figures.inFlightAtKill.send++;
    else this.unexpected.push(`SendMessage ${from.id} -> ${to.id}: ${STATUS_NAME[out.code]} ${out.details}`);
  }

  private settleCall<T>(m: AgentModel, op: Op, out: Outcome<T>, onOk: (v: T) => void): void {
    if (out.ok) {
      this.figures.acknowledged[op]++;
      onOk(out.value);
    } else if (out.at >= this.killAt) {
      this.figures.inFlightAtKill[op]++;
      m.pending = { op, prevStatus: m.status, prevContainer: m.containerId };
    } else {
      this.unexpected.push(`${op} ${m.id}: ${STATUS_NAME[out.code]} ${out.details}`);
    }
    m.busy = false;
  }

  // ---------------------------------------------------------------- after a restart

  /**
   * Waits for the restarted service to settle (tasks terminal, ephemeral agents gone,
   * registry and engine agree), then checks every acknowledged write. Returns violations;
   * adopts the observed state as the model for the next round.
   */
  async verify(c: Clients, docker: Dockerode, instanceId: string, settleMs: number): Promise<string[]> {
    const t0 = Date.now();
    const settledViolations = await settle(async () => {
      const [{ agents }, tasks, containers] = await Promise.all([listAgents(c), this.taskCursor.list(c), containersOf(docker, instanceId)]);
      const out = containerViolations(agents, containers);
      for (const t of tasks) if (!TERMINAL_TASK_STATES.has(t.state)) out.push(`task ${t.task_id} is still ${t.state}`);
      for (const a of agents) {
        if (a.agent_id.startsWith("eph-")) out.push(`ephemeral agent ${a.agent_id} is still there (${a.status})`);
      }
      return out;
    }, settleMs, 100);
    const t1 = Date.now();
    const violations = [...settledViolations];
    const [{ agents }, tasks] = await Promise.all([listAgents(c), this.taskCursor.list(c)]);
    violations.push(...this.checkAgents(agents), ...this.checkTasks(tasks));
    // Every task listed has ended (settled above), and an ended task never changes again:
    // the next round lists from here on.
    if (settledViolations.length === 0) this.taskCursor.advance();
    const t2 = Date.now();
    violations.push(...(await this.checkMailboxes(c)));
    this.adopt(agents, tasks);
    const t3 = Date.now();
    this.figures.verifyMs.settle += t1 - t0;
    this.figures.verifyMs.check += t2 - t1;
    this.figures.verifyMs.mailboxes += t3 - t2;
    return violations;
  }

  private checkAgents(agents: AgentView[]): string[] {
    const out: string[] = [];
    const seen = new Map(agents.map((a) => [a.agent_id, a]));
    for (const m of this.agents.values()) {
      const a = seen.get(m.id);
      const p = m.pending;
      const what = p ? `after an in-flight ${p.op} (was ${p.prevStatus})` : `acknowledged ${m.status}`;
      if (!a) {
        if (p?.op !== "register" && m.status !== "absent") out.push(`agent ${m.id} (${what}) is missing`);
        continue;
      }
      if (m.status === "absent" && p?.op !== "register") {
        out.push(`agent ${m.id} exists (${a.status}) but its registration never returned OK and was not in flight`);
        continue;
      }
      const isRunningOn = (containerId: string) => a.status === status("running") && a.container_id === containerId && containerId !== "";
      let ok: boolean;
      if (m.kind === "task") {
        // Its tasks have ended (settled above): the agent is free again.
        ok = a.status === status("idle") || a.status === status("failed");
      } else if (!p || p.op === "submit" || p.op === "send") {
        ok = m.status === status("running") ? isRunningOn(m.containerId) : a.status === m.status;
      } else if (p.op === "register") {
        ok = a.status === status("idle");
      } else if (p.op === "start") {
        ok = a.status === p.prevStatus || a.status === status("failed") || a.status === status("running");
      } else {
        ok = isRunningOn(p.prevContainer) || a.status === status("idle");
      }
      if (!ok) out.push(`agent ${m.id} ${what} is ${a.status} (${a.status_reason}) on container ${a.container_id.slice(0, 12) || "-"}`);
    }
    for (const a of agents) {
      if (!this.agents.has(a.agent_id) && !a.agent_id.startsWith("eph-")) out.push(`unknown agent ${a.agent_id}`);
    }
    return out;
  }

  private checkTasks(tasks: TaskView[]): string[] {
    const out: string[] = [];
    const seen = new Map(tasks.map((t) => [t.task_id, t]));
    for (const t of this.tasks.values()) if (!seen.has(t.taskId)) out.push(`acknowledged task ${t.taskId} is missing`);
    let unknownEphemeral = 0;
    const unknownPerAgent = new Map<string, number>();
    for (const t of tasks) {
      if (!this.tasks.has(t.task_id) && !this.counted.has(t.task_id)) {
        if (t.ephemeral) unknownEphemeral++;
        else {
          const m = this.agents.get(t.agent_id);
          const n = (unknownPerAgent.get(t.agent_id) ?? 0) + 1;
          unknownPerAgent.set(t.agent_id, n);
          if (m?.pending?.op !== "submit" || n > 1) out.push(`task ${t.task_id} on ${t.agent_id} was never acknowledged nor in flight`);
        }
      }
      if (t.state === "TASK_STATE_COMPLETED") {
        if (!t.result?.success || (t.result.exit_code ?? 0) !== 0) out.push(`task ${t.task_id} COMPLETED without a successful result`);
      } else if (t.state === "TASK_STATE_FAILED") {
        if (t.state_reason === "" || t.state_message === "") out.push(`task ${t.task_id} FAILED without a reason (${t.state_reason}: ${t.state_message})`);
      } else if (TERMINAL_TASK_STATES.has(t.state)) {
        out.push(`task ${t.task_id} ended ${t.state} (${t.state_reason}: ${t.state_message}); nothing canceled it`);
      }
    }
    if (unknownEphemeral > this.pendingEphemeral) out.push(`${unknownEphemeral} template tasks appeared for ${this.pendingEphemeral} in-flight submissions`);
    return out;
  }

  private async checkMailboxes(c: Clients): Promise<string[]> {
    const out: string[] = [];
    const byReceiver = new Map<string, MessageModel[]>();
    for (const m of this.messages) byReceiver.set(m.to, [...(byReceiver.get(m.to) ?? []), m]);
    // Each mailbox is read from the last sequence an earlier round verified (nothing acknowledges
    // or removes messages here, so what was verified stays), not from the start.
    for (const [to, expected] of byReceiver) {
      const maxSeq = Math.max(...expected.map((m) => m.sequence));
      const from = this.mailboxVerified.get(to) ?? 0;
      const got = await readMailbox(c, to, from, maxSeq);
      const bySeq = new Map(got.map((m) => [m.sequence, m.messageId]));
      for (const m of expected) {
        if (bySeq.get(m.sequence) !== m.messageId) out.push(`message ${m.messageId} (seq ${m.sequence}) to ${to} is missing (found ${bySeq.get(m.sequence) ?? "nothing"})`);
        else this.figures.messagesVerified++;
      }
      got.forEach((m, i) => {
        if (m.sequence !== from + i + 1) out.push(`mailbox ${to}: sequence ${m.sequence} at position ${from + i + 1} (a gap or a duplicate)`);
      });
      if (got.length > 0) this.mailboxVerified.set(to, Math.max(from, got[got.length - 1]!.sequence));
    }
    // Verified once; later rounds check only what is new.
    this.messages.length = 0;
    return out;
  }

  private adopt(agents: AgentView[], tasks: TaskView[]): void {
    const seen = new Map(agents.map((a) => [a.agent_id, a]));
    for (const m of [...this.agents.values()]) {
      const a = seen.get(m.id);
      m.pending = undefined;
      if (!a) {
        this.agents.delete(m.id);
        continue;
      }
      m.status = a.status;
      m.containerId = a.container_id;
    }
    for (const t of tasks) {
      if (!this.counted.has(t.task_id)) {
        this.counted.add(t.task_id);
        const key = t.state === "TASK_STATE_FAILED" ? `FAILED/${t.state_reason}` : t.state.replace("TASK_STATE_", "");
        this.figures.tasksFinished[key] = (this.figures.tasksFinished[key] ?? 0) + 1;
      }
      const m = this.agents.get(t.agent_id);
      if (m && m.kind === "task") m.lastTaskId = t.task_id;
    }
    this.tasks.clear();
    this.pendingEphemeral = 0;
  }
}

/** Reads a mailbox after sequence `after` until the message with sequence maxSeq (or 10 s). */
async function readMailbox(c: Clients, agentId: string, after: number, maxSeq: number): Promise<{ sequence: number; messageId: string }[]> {
  const stream = serverStream<{ message?: { sequence: string; message_id: string } | null }>(c.life, "StreamMessages", { agent_id: agentId, resume_after_sequence: String(after) }, { deadlineMs: 15_000 });
  const got: { sequence: number; messageId: string }[] = [];
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => done(), 10_000);
    const done = () => {
      clearTimeout(timer);
      stream.cancel();
      resolve();
    };
    stream.on("data", (res) => {
      if (!res.message) return;
      got.push({ sequence: Number(res.message.sequence), messageId: res.message.message_id });
      if (Number(res.message.sequence) >= maxSeq) done();
    });
    stream.on("error", () => done());
    stream.on("end", () => done());
  });
  return got;
}

/**
 * ListTasks from where the previous round's listing ended, so a round costs what is new,
 * not the whole history: tasks come in submission order, a round only starts once every
 * listed task has ended, and an ended task never changes. It resumes from the page token
 * that fetched the last page it saw (that page is read again, at most 1,000 tasks).
 */
class TaskCursor {
  private from = "";
  private lastPageToken = "";

  async list(c: Clients): Promise<TaskView[]> {
    const items: TaskView[] = [];
    let token = this.from;
    for (;;) {
      const res = await unary<{ tasks?: TaskView[]; next_page_token?: string }>(c.life, "ListTasks", { page_size: 1000, page_token: token });
      items.push(...(res.tasks ?? []));
      const next = String(res.next_page_token ?? "");
      if (next === "") {
        this.lastPageToken = token;
        return items;
      }
      token = next;
    }
  }

  /** The next list() starts at the last page the latest list() read. */
  advance(): void {
    this.from = this.lastPageToken;
  }
}
