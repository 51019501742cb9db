/**
 * The container an agent's start asks the backend for: the agent's image, command,
 * sandbox and limits, its workspace and the service's socket, its token, and the
 * labels that let the service find its containers again.
 */
import type { Agent } from "./agent.js";
import type { ContainerSpec } from "./ports.js";

export interface ContainerSpecSettings {
  instanceId: string;
  socketDir?: string;
  containerSocketPath?: string;
}

/** agentEnv: the agent's stored environment values (Store.agentEnv), which the Agent itself never carries. */
export function containerSpecFor(
  agent: Agent,
  agentEnv: Record<string, string>,
  token: string,
  settings: ContainerSpecSettings,
  options: { taskId?: string; env?: Record<string, string> },
): ContainerSpec {
  const { config } = agent;
  const env: Record<string, string> = {
    ...agentEnv,
    ...options.env,
    AGENTORCH_AGENT_ID: config.agentId,
    AGENTORCH_TOKEN: token,
  };
  if (settings.socketDir) env.AGENTORCH_SOCKET = settings.containerSocketPath ?? "/run/agentorch/agentorch.sock";
  return {
    image: config.image,
    command: config.command,
    env,
    policy: config.policy,
    resources: config.resources,
    workspace: { hostPath: agent.workspacePath, mountPoint: config.workspace.mountPoint, readOnly: config.workspace.readOnly },
    socketDir: settings.socketDir,
    labels: { agentId: config.agentId, instanceId: settings.instanceId, taskId: options.taskId },
  };
}
