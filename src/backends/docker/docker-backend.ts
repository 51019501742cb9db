/**
 * The ContainerBackend on a Docker engine (dockerode). It speaks the core's terms only:
 * no dockerode type leaves this directory, every failure is an AgentorchError, and every
 * call is logged the same way (see engine-call.ts). Env values are never logged: they
 * carry the container's AGENTORCH_TOKEN.
 */
import Dockerode from "dockerode";
import { AgentorchError, type ErrorDetails } from "../../core/errors.js";
import type {
  ContainerBackend,
  ContainerExit,
  ContainerInfo,
  ContainerOutput,
  ContainerSpec,
  ContainerWatchHandler,
  Logger,
} from "../../core/ports.js";
import { buildCreateOptions, containerName, fromDockerLabels, LABELS } from "./container-options.js";
import { engineMessage, isAbortError, isConflict, isNotFound, statusOf, unreachableCode } from "./docker-errors.js";
import { dockerTime } from "./docker-time.js";
import { parseDockerHost } from "./engine-address.js";
import { checkAborted, dial, type Engine, raceAbort, traced } from "./engine-call.js";
import { watchEvents } from "./events.js";
import { createHostPaths, type HostPaths, withHostPaths } from "./host-paths.js";
import { followOutput, readOutput } from "./logs.js";
import { oomRecorded } from "./oom.js";

export interface DockerBackendOptions {
  /** DOCKER_HOST semantics: unix:///path or tcp://host:port. Default unix:///var/run/docker.sock. */
  dockerHost?: string;
  /** uid:gid the containers run as. Default 65534:65534 (nobody). */
  user?: string;
  /**
   * AGENTORCH_HOST_DATA_DIR: the data directory (`inside`, as the service sees it) is `host`
   * on the engine's host. Unset: found by inspecting the service's own container, if any.
   */
  hostDataDir?: { inside: string; host: string };
  logger: Logger;
}

export const DEFAULT_CONTAINER_USER = "65534:65534";

/** How long ping waits for an answer before calling the engine unavailable. */
const PING_TIMEOUT_MS = 5_000;
/** Socket errors after which the request surely never reached the engine. */
const NEVER_CONNECTED = new Set(["ENOENT", "ECONNREFUSED", "EACCES"]);
/** How long wait() looks for a trailing oom event after an unexplained exit 137. */
const OOM_EVENT_GRACE_MS = 1_000;
/** How long a kill by this backend is remembered. */
const KILL_MEMORY_MS = 10 * 60_000;
/** Inspects in flight at once while listing. */
const LIST_CONCURRENCY = 8;

function toInfo(raw: Dockerode.ContainerInspectInfo): ContainerInfo {
  const state = raw.State;
  const info: ContainerInfo = {
    containerId: raw.Id,
    labels: fromDockerLabels(raw.Config?.Labels),
    running: state.Running === true,
    oomKilled: state.OOMKilled === true,
  };
  if (state.Paused === true) info.paused = true;
  if (state.Status === "removing") info.removing = true;
  const startedAt = dockerTime(state.StartedAt);
  const finishedAt = dockerTime(state.FinishedAt);
  if (startedAt !== undefined) info.startedAt = startedAt;
  if (finishedAt !== undefined) info.finishedAt = finishedAt;
  // ExitCode is 0 for a container that never ran too: report it only once it has finished.
  if (!info.running && finishedAt !== undefined && typeof state.ExitCode === "number") info.exitCode = state.ExitCode;
  return info;
}

/** Creates the Docker backend. Connects lazily: construction never fails on an absent engine. */
export function createDockerBackend(options: DockerBackendOptions): ContainerBackend {
  const address = parseDockerHost(options.dockerHost);
  // Explicit undefineds: docker-modem would otherwise merge in DOCKER_HOST from the environment.
  const docker = new Dockerode({ host: undefined, port: undefined, socketPath: undefined, ...address.modemOptions });
  const engine: Engine = { docker, endpoint: address.endpoint, logger: options.logger.child({ component: "docker-backend" }) };
  const hostPaths = createHostPaths(engine, options.hostDataDir === undefined ? {} : { hostDataDir: options.hostDataDir });
  return new DockerBackend(engine, options.user ?? DEFAULT_CONTAINER_USER, hostPaths);
}

class DockerBackend implements ContainerBackend {
  readonly endpoint: string;
  /** Containers this backend SIGKILLed recently (id -> when), so their exit 137 is not taken for an OOM. */
  private readonly killedByUs = new Map<string, number>();

  constructor(
    private readonly engine: Engine,
    private readonly user: string,
    private readonly hostPaths: HostPaths,
  ) {
    this.endpoint = engine.endpoint;
  }

  private get docker(): Dockerode {
    return this.engine.docker;
  }

  ping(signal?: AbortSignal): Promise<void> {
    return traced(this.engine, "ping", {}, async () => {
      const timeout = AbortSignal.timeout(PING_TIMEOUT_MS);
      const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
      try {
        await dial(this.engine, { method: "GET", path: "/_ping", statusCodes: { 200: true, 500: "server error" }, signal: combined });
      } catch (err) {
        if (timeout.aborted && !signal?.aborted) {
          throw new AgentorchError("unavailable", `Docker engine at ${this.endpoint} did not answer within ${PING_TIMEOUT_MS} ms`, {}, { cause: err });
        }
        throw err;
      }
    });
  }

  imageExists(image: string, signal?: AbortSignal): Promise<boolean> {
    return traced(this.engine, "image-inspect", {}, async (log) => {
      try {
        await dial(this.engine, {
          method: "GET",
          path: `/images/${encodeURI(image)}/json`,
          statusCodes: { 200: true, 404: "no such image", 500: "server error" },
          signal,
        });
        return true;
      } catch (err) {
        if (isNotFound(err)) {
          log.debug({ image }, "image not present");
          return false;
        }
        throw err;
      }
    });
  }

  spawn(spec: ContainerSpec, signal?: AbortSignal): Promise<{ containerId: string; startedAt: number }> {
    const name = containerName(spec.labels.agentId);
    const details = { agentId: spec.labels.agentId, ...(spec.labels.taskId ? { taskId: spec.labels.taskId } : {}) };
    return traced(this.engine, "spawn", details, async (log) => {
      checkAborted(signal);
      // Bind sources as the engine's host sees them (the service may run in a container).
      const { name: _name, ...body } = buildCreateOptions(await withHostPaths(spec, this.hostPaths, signal), this.user, name);
      log.debug({ name, image: spec.image, policy: spec.policy, envNames: Object.keys(spec.env) }, "creating container");
      // Neither request carries the signal: an aborted HTTP request may still have done
      // its work on the engine. raceAbort stops waiting at once and undoes it afterwards.
      let containerId: string;
      try {
        const create = dial<{ Id: string }>(this.engine, {
          method: "POST",
          path: "/containers/create",
          query: { name },
          body,
          statusCodes: { 200: true, 201: true, 400: "bad parameter", 404: "no such image", 409: "conflict", 500: "server error" },
          signal: undefined,
        });
        const created = await raceAbort(create, signal, (late) => {
          late.then((c) => this.removeQuietly(c.Id, log), () => undefined).catch(() => undefined);
        });
        containerId = created.Id;
      } catch (err) {
        // A connection that broke mid-request may have created it: it has our name.
        if (statusOf(err) === undefined && !isAbortError(err) && !NEVER_CONNECTED.has(unreachableCode(err) ?? "")) {
          await this.removeQuietly(name, log);
        }
        throw this.createError(err, spec.image, details);
      }
      const clog = log.child({ containerId });
      const removeCreated = () => this.removeQuietly(containerId, clog);
      let startAbandoned = false;
      try {
        checkAborted(signal);
        const start = this.docker.getContainer(containerId).start() as Promise<unknown>;
        await raceAbort(start, signal, (late) => {
          // Removed once the start has settled, so the two never race on the engine.
          startAbandoned = true;
          late.then(removeCreated, removeCreated).catch(() => undefined);
        });
        // Aborted just as it started: the caller will not take the container, so do not leave it.
        checkAborted(signal);
      } catch (err) {
        clog.debug({ err }, "start failed or aborted: removing the created container");
        if (!startAbandoned) await removeCreated();
        if (statusOf(err) !== undefined) {
          throw new AgentorchError("failed_precondition", `container did not start: ${engineMessage(err)}`, { ...details, containerId }, { cause: err });
        }
        throw err;
      }
      // The local clock, not an inspect of State.StartedAt: one engine request less per
      // start matters when the engine is the bottleneck (benchmark 2, 16 starts in flight),
      // and the engine answered the start once the process was running.
      const startedAt = Date.now();
      clog.debug({ name }, "container started");
      return { containerId, startedAt };
    });
  }

  private createError(err: unknown, image: string, details: ErrorDetails): unknown {
    const status = statusOf(err);
    const message = engineMessage(err);
    if (status === 404 && /no such image/i.test(message)) {
      return new AgentorchError(
        "failed_precondition",
        `image "${image}" is not present on the Docker engine (no pull is made): build, load or import it first`,
        details,
        { cause: err },
      );
    }
    if (status === 400) {
      return new AgentorchError("invalid_argument", `the Docker engine refused the container configuration: ${message}`, details, { cause: err });
    }
    return err;
  }

  /** Best-effort force removal used to undo a half-done spawn; never throws. */
  private async removeQuietly(idOrName: string, log: Logger): Promise<void> {
    try {
      await this.docker.getContainer(idOrName).remove({ force: true, v: true });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) log.warn({ err, container: idOrName }, "could not remove a container after a failed spawn");
    }
  }

  kill(containerId: string, signal?: AbortSignal): Promise<void> {
    return traced(this.engine, "kill", { containerId }, async (log) => {
      try {
        this.noteKill(containerId);
        await this.docker.getContainer(containerId).kill({ signal: "SIGKILL", abortSignal: signal });
      } catch (err) {
        if (isNotFound(err) || isConflict(err)) {
          log.debug({ status: statusOf(err) }, "kill: container already stopped or gone");
          return;
        }
        throw err;
      }
    });
  }

  pause(containerId: string, signal?: AbortSignal): Promise<void> {
    return traced(this.engine, "pause", { containerId }, async (log) => {
      try {
        await this.docker.getContainer(containerId).pause({ abortSignal: signal });
      } catch (err) {
        // Docker 20.10 answers these with 500, newer engines with 409: the message tells.
        if (/already paused/i.test(engineMessage(err))) {
          log.debug({}, "pause: already paused");
          return;
        }
        if (isNotFound(err)) throw new AgentorchError("not_found", `container ${containerId} is gone`, { containerId }, { cause: err });
        if (isConflict(err) || /not running/i.test(engineMessage(err))) {
          throw new AgentorchError("failed_precondition", `cannot pause container ${containerId}: ${engineMessage(err)}`, { containerId }, { cause: err });
        }
        throw err;
      }
    });
  }

  unpause(containerId: string, signal?: AbortSignal): Promise<void> {
    return traced(this.engine, "unpause", { containerId }, async (log) => {
      try {
        await this.docker.getContainer(containerId).unpause({ abortSignal: signal });
      } catch (err) {
        if (/not paused/i.test(engineMessage(err))) {
          log.debug({}, "unpause: not paused");
          return;
        }
        if (isNotFound(err)) throw new AgentorchError("not_found", `container ${containerId} is gone`, { containerId }, { cause: err });
        throw err;
      }
    });
  }

  remove(containerId: string, signal?: AbortSignal): Promise<void> {
    return traced(this.engine, "remove", { containerId }, async (log) => {
      try {
        this.noteKill(containerId);
        await this.docker.getContainer(containerId).remove({ force: true, v: true, abortSignal: signal });
      } catch (err) {
        if (isNotFound(err) || (isConflict(err) && /already in progress/i.test(engineMessage(err)))) {
          log.debug({ status: statusOf(err) }, "remove: container already gone or going");
          return;
        }
        throw err;
      }
    });
  }

  inspect(containerId: string, signal?: AbortSignal): Promise<ContainerInfo | undefined> {
    return traced(this.engine, "inspect", { containerId }, async () => {
      let raw: Dockerode.ContainerInspectInfo;
      try {
        raw = await this.docker.getContainer(containerId).inspect({ abortSignal: signal });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
      const info = toInfo(raw);
      if (info.exitCode === 137 && !info.oomKilled && this.unexplainedKill(raw.Id)) {
        info.oomKilled = await oomRecorded(this.engine, raw.Id, raw.State.StartedAt, Date.now(), signal).catch((err: unknown) => {
          if (signal?.aborted) throw err;
          return false; // only a second opinion: the inspect itself succeeded
        });
      }
      return info;
    });
  }

  wait(containerId: string, signal?: AbortSignal): Promise<ContainerExit> {
    return traced(this.engine, "wait", { containerId }, async (log) => {
      const container = this.docker.getContainer(containerId);
      const result = (await container.wait({ abortSignal: signal })) as { StatusCode?: number };
      const exitCode = typeof result.StatusCode === "number" ? result.StatusCode : -1;
      let state: Dockerode.ContainerInspectInfo["State"] | undefined;
      let id = containerId;
      try {
        const raw = await container.inspect({ abortSignal: signal });
        state = raw.State;
        id = raw.Id;
      } catch (err) {
        if (!isNotFound(err)) throw err; // removed right after it exited: no OOM information left
      }
      let oomKilled = state?.OOMKilled === true;
      if (!oomKilled && exitCode === 137 && state !== undefined && this.unexplainedKill(id)) {
        // The oom event may still be on its way: give it a moment.
        oomKilled = await oomRecorded(this.engine, id, state.StartedAt, Date.now() + OOM_EVENT_GRACE_MS, signal);
        if (oomKilled) log.debug({}, "OOM kill found in the event log (engine state said otherwise)");
      }
      return { exitCode, oomKilled };
    });
  }

  /** False when this backend SIGKILLed the container itself (then 137 is no OOM). */
  private unexplainedKill(containerId: string): boolean {
    for (const [id] of this.killedByUs) if (id === containerId || containerId.startsWith(id)) return false;
    return true;
  }

  private noteKill(containerId: string): void {
    const now = Date.now();
    for (const [id, at] of this.killedByUs) if (now - at > KILL_MEMORY_MS) this.killedByUs.delete(id);
    this.killedByUs.set(containerId, now);
  }

  output(containerId: string, maxBytes: number, signal?: AbortSignal): Promise<ContainerOutput> {
    return readOutput(this.engine, containerId, maxBytes, signal);
  }

  followOutput(containerId: string, tailBytes: number, signal: AbortSignal): AsyncIterable<Uint8Array> {
    return followOutput(this.engine, containerId, tailBytes, signal);
  }

  list(instanceId: string, signal?: AbortSignal): Promise<ContainerInfo[]> {
    return traced(this.engine, "list", {}, async () => {
      const summaries = await this.docker.listContainers({
        all: true,
        filters: { label: [`${LABELS.instance}=${instanceId}`] },
        abortSignal: signal,
      });
      // The summary lacks exit code, OOM and times: inspect each (a few at a time).
      const infos: ContainerInfo[] = [];
      for (let i = 0; i < summaries.length; i += LIST_CONCURRENCY) {
        const batch = summaries.slice(i, i + LIST_CONCURRENCY);
        const inspected = await Promise.all(batch.map((s) => this.inspect(s.Id, signal)));
        for (const info of inspected) if (info !== undefined) infos.push(info);
      }
      return infos;
    });
  }

  watch(instanceId: string, handler: ContainerWatchHandler, signal: AbortSignal): void {
    watchEvents(this.engine, instanceId, handler, signal);
  }
}
