/**
 * Task recovery: after a restart, adopt the working tasks whose containers still run,
 * fail those whose containers are gone, queue the waiting ones again and remove the
 * ephemeral agents left without a task; later, on a timer or on request, reap zombie
 * tasks (container gone, no run of this process, or past zombie_timeout).
 */
import type { AgentService } from "../agent-service.js";
import { errorMessage, isAgentorchError } from "../errors.js";
import type { Clock, Logger } from "../ports.js";
import type { LifecycleConfig } from "./lifecycle-config.js";
import type { TaskStore } from "./ports.js";
import type { Scheduler } from "./scheduler.js";
import { isTerminal } from "./task.js";
import type { TaskRuns } from "./task-runs.js";

export interface TaskRecoveryDeps {
  agents: AgentService;
  tasks: TaskStore;
  clock: Clock;
  logger: Logger;
  scheduler: Scheduler;
  runs: TaskRuns;
  /** The lifecycle config in force (it changes live). */
  config: () => LifecycleConfig;
}

export class TaskRecovery {
  constructor(private readonly deps: TaskRecoveryDeps) {}

  /** Adopts working tasks whose containers still run, queues waiting ones. Call after agents.open(). */
  async recover(): Promise<void> {
    const { tasks, agents } = this.deps;
    for (const task of tasks.tasksWithState(["working"])) {
      // Its container exited while the service was down; reconciling noticed, and the exit
      // finishes the task with its real outcome (not CONTAINER_LOST).
      if (this.deps.runs.exiting.has(task.taskId)) continue;
      const agent = agents.find(task.agentId);
      if (agent?.status === "running" && agent.currentTaskId === task.taskId && agent.containerId === task.containerId) {
        this.deps.runs.adopt(task);
      } else {
        await this.deps.runs.finish(task.taskId, "failed", "CONTAINER_LOST", "the task's container was gone when the service restarted");
      }
    }
    for (const task of tasks.tasksWithState(["submitted"])) {
      agents.restoreReservation(task.agentId, task.taskId);
      this.deps.scheduler.enqueue(task.taskId, task.priority, task.seq);
    }
    await this.removeOrphanEphemerals();
  }

  /**
   * Fails and cleans up WORKING tasks whose container is gone, that no run of this
   * process owns, or that outran zombie_timeout. Returns their ids.
   */
  async reapZombies(signal?: AbortSignal): Promise<string[]> {
    const now = this.deps.clock.now();
    const reaped: string[] = [];
    for (const task of this.deps.tasks.tasksWithState(["working"])) {
      const run = this.deps.runs.runOf(task.taskId);
      if (run?.stopReason) continue; // already being stopped
      const tooOld = now - (task.startedAt ?? now) > this.deps.config().zombieTimeoutMs;
      let gone = false;
      if (task.containerId) {
        const agent = this.deps.agents.find(task.agentId);
        // An agent no longer on this container has had its exit noticed: the task is being finished.
        if (agent && agent.containerId === task.containerId && agent.status !== "running" && !tooOld) continue;
        let state: "running" | "exited" | "gone";
        try {
          state = await this.deps.agents.containerState(task.containerId, signal);
        } catch (err) {
          this.deps.logger.debug({ taskId: task.taskId, err: errorMessage(err) }, "zombie check skipped: engine unreachable");
          continue;
        }
        // An exited container's end is on its way through the events; only a vanished one is a zombie.
        gone = state === "gone";
      } else {
        gone = !run; // no container yet and nobody starting one
      }
      if (!tooOld && !gone) continue;
      const message = tooOld ? `ran longer than zombie_timeout (${this.deps.config().zombieTimeoutMs} ms)` : "its container is gone";
      this.deps.logger.warn({ taskId: task.taskId, reason: message }, "reaping zombie task");
      if (run && !gone) await this.deps.runs.stopRun(task.taskId, "ZOMBIE", message);
      else {
        const agent = this.deps.agents.find(task.agentId);
        if (agent?.status === "running" && agent.currentTaskId === task.taskId) await this.deps.runs.stopRun(task.taskId, "ZOMBIE", message);
        else await this.deps.runs.finish(task.taskId, "failed", "ZOMBIE", message);
      }
      reaped.push(task.taskId);
    }
    return reaped;
  }

  /**
   * An ephemeral agent outlives its task only when the process died in between: after the
   * task ended and before the agent was removed, or after the agent was made and before
   * its task was stored. Nothing else would ever remove it. Runs at recovery, after the
   * waiting tasks have their agents reserved again.
   */
  private async removeOrphanEphemerals(): Promise<void> {
    const { agents, tasks } = this.deps;
    const orphans: string[] = [];
    for (const agent of agents.ephemeralAgents()) {
      // Not one whose task's exit is being handled: finishing that task removes it.
      if (agent.currentTaskId && this.deps.runs.exiting.has(agent.currentTaskId)) continue;
      const task = agent.currentTaskId ? tasks.getTask(agent.currentTaskId) : undefined;
      if (!task || isTerminal(task.state)) orphans.push(agent.config.agentId);
    }
    for (const agentId of orphans) {
      try {
        await agents.remove(agentId, { deleteWorkspace: true });
        this.deps.logger.info({ agentId }, "removed an ephemeral agent left without a task");
      } catch (err) {
        if (isAgentorchError(err) && err.kind === "not_found") continue;
        this.deps.logger.warn({ agentId, err: errorMessage(err) }, "could not remove an ephemeral agent left without a task");
      }
    }
  }
}
