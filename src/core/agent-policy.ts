/**
 * What the admin allows of agents, in one place the agent service and task templates share:
 * the image allowlist, where workspaces may be mounted, the resource ceilings (changed live
 * through the lifecycle config) and who may give an agent a network.
 */
import type { Agent, SandboxPolicy } from "./agent.js";
import { type AgentCeilings, checkCeilings, checkNetworkPolicy, DEFAULT_AGENT_CEILINGS } from "./agent-ceilings.js";
import { type AgentRules, DEFAULT_MOUNT_PREFIXES, imageAllowed } from "./agent-config.js";
import type { Role } from "./auth.js";
import { AgentorchError } from "./errors.js";

/** Who asks for an agent: an operator's role decides whether it may have a network. */
export interface Requester {
  role?: Role;
}

export interface AgentPolicySettings {
  /** Image prefixes allowed; empty allows every image on the engine. */
  imageAllowlist: readonly string[];
  /** Where workspaces may be mounted; default DEFAULT_MOUNT_PREFIXES. */
  mountPrefixes?: readonly string[];
  /** Agent ids and images that may have a network without the admin role (AGENTORCH_NETWORK_ALLOWLIST). */
  networkAllowlist?: readonly string[];
  /** The ceilings until setCeilings says otherwise; default DEFAULT_AGENT_CEILINGS. */
  ceilings?: AgentCeilings;
}

export class AgentPolicy {
  private ceilings: AgentCeilings;

  constructor(private readonly settings: AgentPolicySettings) {
    this.ceilings = { ...(settings.ceilings ?? DEFAULT_AGENT_CEILINGS) };
  }

  /** The admin's ceilings change live (UpdateLifecycleConfig): registrations and starts from now on are checked against them. */
  setCeilings(ceilings: AgentCeilings): void {
    this.ceilings = { ...ceilings };
  }

  /** What a configuration (an agent's or a task template's) is checked against now. */
  rules(): AgentRules {
    return { mountPrefixes: this.settings.mountPrefixes ?? DEFAULT_MOUNT_PREFIXES, ceilings: this.ceilings };
  }

  /** PERMISSION_DENIED unless the image matches the allowlist. */
  checkImage(image: string): void {
    if (!imageAllowed(image, this.settings.imageAllowlist)) {
      throw new AgentorchError("permission_denied", `image "${image}" is not in the configured image allowlist`);
    }
  }

  /** PERMISSION_DENIED unless the requester may give this agent a network (field: where the policy was asked). */
  checkNetwork(policy: SandboxPolicy, agentId: string, image: string, requester: Requester, field = "policy"): void {
    checkNetworkPolicy(policy, { agentId, image, role: requester.role, field }, this.settings.networkAllowlist ?? [], imageAllowed);
  }

  /** At a start: the image is still allowed and no resource is above a ceiling lowered since (FAILED_PRECONDITION naming it). */
  checkStart(agent: Agent): void {
    this.checkImage(agent.config.image);
    checkCeilings(agent.config.resources, this.ceilings, "start", agent.config.agentId);
  }

  /** The CPU limit of agents stored before every agent had one (cpus 0): today's default. */
  defaultCpus(): number {
    return Math.min(this.ceilings.defaultAgentCpus, this.ceilings.maxAgentCpus);
  }
}
