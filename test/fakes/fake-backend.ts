/**
 * An in-memory ContainerBackend for domain-rule tests. It behaves like the Docker
 * adapter at the port (ids, idempotent kill/remove, events to watchers) and lets a
 * test script failures and exits. The real adapter is tested against a real engine.
 */
import { AgentorchError, failedPrecondition, unavailable } from "../../src/core/errors.js";
import type {
  ContainerBackend,
  ContainerEvent,
  ContainerExit,
  ContainerInfo,
  ContainerOutput,
  ContainerSpec,
  ContainerWatchHandler,
} from "../../src/core/ports.js";

export interface FakeContainer {
  id: string;
  spec: ContainerSpec;
  running: boolean;
  paused?: boolean;
  /** `docker rm -f` under way: killed, not yet gone. */
  removing?: boolean;
  exitCode?: number;
  oomKilled: boolean;
  output: string;
  startedAt: number;
  waiters: ((exit: ContainerExit) => void)[];
}

export class FakeBackend implements ContainerBackend {
  readonly endpoint = "fake://engine";
  readonly containers = new Map<string, FakeContainer>();
  readonly images = new Set<string>(["busybox:test"]);
  /** Next spawn rejects with this. */
  spawnError: Error | undefined;
  /** Every remove rejects with this while set. */
  removeError: Error | undefined;
  /** The engine is down: every call rejects UNAVAILABLE. */
  down = false;
  /** Resolves a spawn only when the test calls the function it receives. */
  spawnGate: ((release: () => void) => void) | undefined;
  /** The next container exits with this code before spawn returns (an instant exit). */
  exitDuringSpawn: number | undefined;
  calls: string[] = [];
  private seq = 0;
  private readonly watchers = new Set<ContainerWatchHandler>();

  async ping(): Promise<void> {
    this.check();
  }

  async imageExists(image: string): Promise<boolean> {
    this.check();
    return this.images.has(image);
  }

  async spawn(spec: ContainerSpec, signal?: AbortSignal): Promise<{ containerId: string; startedAt: number }> {
    this.calls.push(`spawn ${spec.labels.agentId}`);
    this.check();
    if (this.spawnGate) {
      const gate = this.spawnGate;
      await new Promise<void>((resolve) => gate(resolve));
    }
    if (this.spawnError) {
      const err = this.spawnError;
      this.spawnError = undefined;
      throw err;
    }
    if (!this.images.has(spec.image)) throw failedPrecondition(`image "${spec.image}" is not present on the Docker engine`);
    signal?.throwIfAborted();
    const id = `fake${(++this.seq).toString().padStart(8, "0")}`;
    const c: FakeContainer = { id, spec, running: true, oomKilled: false, output: "", startedAt: Date.now(), waiters: [] };
    this.containers.set(id, c);
    this.emit({ type: "start", containerId: id, labels: spec.labels, time: Date.now() });
    if (this.exitDuringSpawn !== undefined) {
      this.exit(id, this.exitDuringSpawn);
      this.exitDuringSpawn = undefined;
    }
    return { containerId: id, startedAt: c.startedAt };
  }

  async kill(containerId: string): Promise<void> {
    this.calls.push(`kill ${containerId}`);
    this.check();
    const c = this.containers.get(containerId);
    if (c?.running) this.exit(containerId, 137);
  }

  async pause(containerId: string): Promise<void> {
    this.calls.push(`pause ${containerId}`);
    this.check();
    const c = this.containers.get(containerId);
    if (!c) throw new AgentorchError("not_found", `container ${containerId} is gone`);
    if (!c.running) throw failedPrecondition(`cannot pause container ${containerId}: not running`);
    this.setPaused(c, true);
  }

  async unpause(containerId: string): Promise<void> {
    this.calls.push(`unpause ${containerId}`);
    this.check();
    const c = this.containers.get(containerId);
    if (!c) throw new AgentorchError("not_found", `container ${containerId} is gone`);
    this.setPaused(c, false);
  }

  /** Pauses or unpauses a container as the engine would (also "behind the service's back"), with its event. */
  setPaused(c: FakeContainer, paused: boolean): void {
    if (Boolean(c.paused) === paused || !c.running) return;
    c.paused = paused;
    this.emit({ type: paused ? "pause" : "unpause", containerId: c.id, labels: c.spec.labels, time: Date.now() });
  }

  async remove(containerId: string): Promise<void> {
    this.calls.push(`remove ${containerId}`);
    this.check();
    if (this.removeError) throw this.removeError;
    const c = this.containers.get(containerId);
    if (!c) return;
    if (c.running) this.exit(containerId, 137);
    this.containers.delete(containerId);
    this.emit({ type: "destroy", containerId, labels: c.spec.labels, time: Date.now() });
  }

  async inspect(containerId: string): Promise<ContainerInfo | undefined> {
    this.check();
    const c = this.containers.get(containerId);
    return c && this.info(c);
  }

  async wait(containerId: string): Promise<ContainerExit> {
    this.check();
    const c = this.containers.get(containerId);
    if (!c) throw new AgentorchError("not_found", `no container ${containerId}`);
    if (!c.running) return { exitCode: c.exitCode ?? -1, oomKilled: c.oomKilled };
    return new Promise((resolve) => c.waiters.push(resolve));
  }

  async output(containerId: string, maxBytes: number): Promise<ContainerOutput> {
    this.check();
    const c = this.containers.get(containerId);
    if (!c) throw new AgentorchError("not_found", `no container ${containerId}`);
    const all = Buffer.from(c.output);
    return all.byteLength > maxBytes
      ? { data: all.subarray(all.byteLength - maxBytes), truncated: true }
      : { data: all, truncated: false };
  }

  async *followOutput(containerId: string, tailBytes: number): AsyncIterable<Uint8Array> {
    const out = await this.output(containerId, tailBytes);
    yield out.data;
  }

  async list(instanceId: string): Promise<ContainerInfo[]> {
    this.check();
    return [...this.containers.values()].filter((c) => c.spec.labels.instanceId === instanceId).map((c) => this.info(c));
  }

  watch(_instanceId: string, handler: ContainerWatchHandler, signal: AbortSignal): void {
    this.watchers.add(handler);
    signal.addEventListener("abort", () => this.watchers.delete(handler), { once: true });
    if (!this.down) queueMicrotask(() => handler.onConnected());
  }

  // ---- test controls

  /** The container exits by itself (emits oom first when oom). */
  exit(containerId: string, exitCode: number, oom = false): void {
    const c = this.containers.get(containerId);
    if (!c?.running) return;
    c.running = false;
    c.paused = false;
    c.exitCode = exitCode;
    c.oomKilled = oom;
    if (oom) this.emit({ type: "oom", containerId, labels: c.spec.labels, time: Date.now() });
    this.emit({ type: "die", containerId, labels: c.spec.labels, exitCode, time: Date.now() });
    for (const w of c.waiters.splice(0)) w({ exitCode, oomKilled: oom });
  }

  /** The container disappears without the service asking (docker rm -f from outside). */
  vanish(containerId: string): void {
    this.containers.delete(containerId);
  }

  /** `docker rm -f` from outside on a slow engine: killed (die 137), still listed as being removed. */
  removeSlowlyFromOutside(containerId: string): void {
    const c = this.containers.get(containerId);
    if (!c) return;
    c.removing = true;
    this.exit(containerId, 137);
  }

  /** `docker rm -f` from outside: killed (die 137), then destroyed. */
  removeFromOutside(containerId: string): void {
    const c = this.containers.get(containerId);
    if (!c) return;
    this.exit(containerId, 137);
    this.containers.delete(containerId);
    this.emit({ type: "destroy", containerId, labels: c.spec.labels, time: Date.now() });
  }

  write(containerId: string, text: string): void {
    const c = this.containers.get(containerId);
    if (c) c.output += text;
  }

  setDown(down: boolean): void {
    this.down = down;
    for (const w of this.watchers) {
      if (down) w.onDisconnected(new Error("engine stopped"));
      else w.onConnected();
    }
  }

  running(): FakeContainer[] {
    return [...this.containers.values()].filter((c) => c.running);
  }

  private info(c: FakeContainer): ContainerInfo {
    return { containerId: c.id, labels: c.spec.labels, running: c.running, ...(c.paused ? { paused: true } : {}), ...(c.removing ? { removing: true } : {}), exitCode: c.exitCode, oomKilled: c.oomKilled, startedAt: c.startedAt };
  }

  private emit(event: ContainerEvent): void {
    for (const w of this.watchers) w.onEvent(event);
  }

  private check(): void {
    if (this.down) throw unavailable(`Docker engine unreachable at ${this.endpoint}`);
  }
}
