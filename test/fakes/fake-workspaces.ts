/** In-memory Workspaces for domain tests. */
import type { WorkspaceOptions, Workspaces } from "../../src/core/ports.js";

export class FakeWorkspaces implements Workspaces {
  readonly dirs = new Set<string>();
  readonly files = new Map<string, Uint8Array>();
  /** What each agent's workspace was last created or readied with. */
  readonly options = new Map<string, WorkspaceOptions>();

  async create(agentId: string, options?: WorkspaceOptions): Promise<string> {
    this.dirs.add(agentId);
    if (options) this.options.set(agentId, options);
    return `/fake/workspaces/${agentId}`;
  }
  async remove(agentId: string): Promise<void> {
    this.dirs.delete(agentId);
  }
  async setAside(agentId: string): Promise<string | undefined> {
    return this.dirs.delete(agentId) ? `/fake/workspaces-removed/${agentId}` : undefined;
  }
  async list(): Promise<string[]> {
    return [...this.dirs];
  }
  async readFile(agentId: string, relativePath: string, maxBytes: number): Promise<Uint8Array | undefined> {
    return this.files.get(`${agentId}/${relativePath}`)?.subarray(0, maxBytes);
  }
  async removeFile(agentId: string, relativePath: string): Promise<void> {
    this.files.delete(`${agentId}/${relativePath}`);
  }
}
