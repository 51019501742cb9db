/**
 * What an agent's configuration asks of its workspace (Workspaces.create): the size limit,
 * its own or the admin's ceiling at the time, and whether files there may be executed.
 */
import type { AgentConfig } from "./agent.js";
import type { AgentCeilings } from "./agent-ceilings.js";
import type { WorkspaceOptions } from "./ports.js";

export function workspaceOptionsFor(config: AgentConfig, ceilings: AgentCeilings): WorkspaceOptions {
  const asked = config.resources.diskBytes;
  return {
    sizeBytes: asked ?? ceilings.maxAgentDiskBytes,
    sizeAsked: asked !== undefined,
    noexec: config.workspace.noexec ?? false,
  };
}
