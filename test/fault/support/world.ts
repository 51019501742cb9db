/**
 * What the fault tests look at after a fault: the registry and the tasks as a client reads
 * them (ListAgents, ListTasks), the containers as the engine lists them (by the service
 * instance's label, through a raw client that shares nothing with the service), and the
 * invariants that tie the two together.
 */
import type Dockerode from "dockerode";
import { type Clients, listAll } from "./grpc.js";

export interface AgentView {
  agent_id: string;
  status: string;
  status_reason: string;
  container_id: string;
  workspace_path: string;
  exit_code?: number | null;
  execution_count: number;
  config?: { command?: string[] };
}

export interface TaskView {
  task_id: string;
  agent_id: string;
  state: string;
  state_reason: string;
  state_message: string;
  ephemeral: boolean;
  container_id: string;
  result?: { success: boolean; exit_code?: number | null; output: string } | null;
}

export interface ContainerView {
  id: string;
  agentId: string;
  running: boolean;
  state: string;
}

export const TERMINAL_TASK_STATES = new Set(["TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"]);
export const status = (s: string) => `AGENT_STATUS_${s.toUpperCase()}`;

export async function listAgents(c: Clients): Promise<{ agents: AgentView[]; revision: number }> {
  const { items, revision } = await listAll<AgentView>(c.orch, "ListAgents", "agents");
  return { agents: items, revision };
}

export async function listTasks(c: Clients): Promise<TaskView[]> {
  return (await listAll<TaskView>(c.life, "ListTasks", "tasks")).items;
}

/** Every container of this service instance, running or not, straight from the engine. */
export async function containersOf(docker: Dockerode, instanceId: string): Promise<ContainerView[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`agentorch.instance=${instanceId}`] } });
  return list.map((c) => ({ id: c.Id, agentId: c.Labels["agentorch.agent-id"] ?? "", running: c.State === "running", state: c.State }));
}

/**
 * The invariants between registry and engine once things have settled:
 * - no agent has two containers;
 * - every labelled container belongs to an agent that is RUNNING on exactly that container;
 * - every RUNNING agent's container exists and runs;
 * - no agent is left STARTING or STOPPING.
 * Returns the violations (empty when all hold).
 */
export function containerViolations(agents: AgentView[], containers: ContainerView[]): string[] {
  const out: string[] = [];
  const byAgent = new Map<string, ContainerView[]>();
  for (const c of containers) byAgent.set(c.agentId, [...(byAgent.get(c.agentId) ?? []), c]);
  const agentById = new Map(agents.map((a) => [a.agent_id, a]));
  for (const [agentId, cs] of byAgent) {
    if (cs.length > 1) out.push(`agent ${agentId} has ${cs.length} containers: ${cs.map((c) => `${c.id.slice(0, 12)}(${c.state})`).join(", ")}`);
    const agent = agentById.get(agentId);
    for (const c of cs) {
      if (!agent) out.push(`container ${c.id.slice(0, 12)} (${c.state}) is labelled for agent ${agentId}, which does not exist`);
      else if (agent.status !== status("running") || agent.container_id !== c.id) {
        out.push(`container ${c.id.slice(0, 12)} (${c.state}) of agent ${agentId} is not its current container (agent ${agent.status}, container ${agent.container_id.slice(0, 12)})`);
      } else if (!c.running) out.push(`container ${c.id.slice(0, 12)} of RUNNING agent ${agentId} is ${c.state}`);
    }
  }
  for (const a of agents) {
    if (a.status === status("starting") || a.status === status("stopping")) out.push(`agent ${a.agent_id} is left ${a.status}`);
    if (a.status === status("running") && !containers.some((c) => c.id === a.container_id && c.running)) {
      out.push(`RUNNING agent ${a.agent_id} has no running container ${a.container_id.slice(0, 12)}`);
    }
  }
  return out;
}

/** Polls check() until it returns no violations; returns the last violations after the timeout. */
export async function settle(check: () => Promise<string[]>, timeoutMs: number, intervalMs = 200): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let last: string[] = [];
  for (;;) {
    try {
      last = await check();
    } catch (err) {
      last = [`check failed: ${err instanceof Error ? err.message : String(err)}`];
    }
    if (last.length === 0 || Date.now() > deadline) return last;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
