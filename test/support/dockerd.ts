/**
 * A second, private Docker engine: for tests that stop and start "the" engine while the
 * service runs, and for suites that must not share the machine's engine with the others
 * (see test/fault/support/engine.ts). The machine's own dockerd (/var/run/docker.sock) is
 * never touched: other suites and other engineers use it. This one has its own socket, data root, exec root
 * (hence its own managed containerd), pid file, no iptables rules, and runs in a network
 * namespace of its own (unshare --net): a dockerd started with --bridge=none deletes the
 * host's docker0 interface at start-up (moby's removeDefaultBridgeInterface), which broke
 * every bridge-networked container of the machine's engine when this helper first ran
 * without the namespace. Inside it, nothing the private daemon does to links, bridges or
 * routes reaches the host. Its containers use network "none" (policy CONTAINER).
 *
 * Stopping it (SIGTERM) stops its containers, as a real engine outage without
 * live-restore does; starting it again on the same data root brings back the (now exited)
 * containers and the imported test image.
 *
 * Needs root, a dockerd binary (Debian's docker.io) and unshare (util-linux);
 * privateDockerdSupport() says why not when one is missing, so a suite can skip loudly
 * (or fail in CI).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { accessSync, closeSync, constants, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import Dockerode from "dockerode";
import { REPO_ROOT } from "./server.js";

/** Where dockerd is looked for besides PATH (root's sbin dirs are not always on a test runner's PATH). */
const SBIN_DIRS = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"];

/** Absolute path of an executable (PATH, then the sbin dirs), or undefined. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(":").filter((d) => d !== ""), ...SBIN_DIRS];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** Whether a private engine can be run here, and if not, why. */
export function privateDockerdSupport(): { ok: true; dockerd: string; unshare: string } | { ok: false; why: string } {
  if (process.platform !== "linux") return { ok: false, why: `a private dockerd needs Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, why: "a private dockerd needs root (run the fault suite as root, as CI does)" };
  const dockerd = findExecutable("dockerd");
  if (dockerd === undefined) return { ok: false, why: "no dockerd binary (apt-get install docker.io)" };
  // Never without its own network namespace: see the header.
  const unshare = findExecutable("unshare");
  if (unshare === undefined) return { ok: false, why: "no unshare binary (util-linux) to give the private dockerd its own network namespace" };
  return { ok: true, dockerd, unshare };
}

export interface PrivateDockerd {
  /** The directory holding everything of this engine (socket, data, exec root, log). */
  readonly dir: string;
  /** unix:///…/docker.sock: give it to the service as DOCKER_HOST. */
  readonly dockerHost: string;
  readonly socketPath: string;
  /** A raw client on this engine (tests look at it independently of the service). */
  readonly docker: Dockerode;
  /** True between start() and stop(). */
  readonly running: boolean;
  /** Starts the daemon (again) on the same data root and waits until it answers. */
  start(): Promise<void>;
  /** SIGTERM, then waits until dockerd and its containerd have exited (their containers are stopped). */
  stop(): Promise<void>;
  /** Stops the daemon if it runs, unmounts what it left and deletes its directory. */
  destroy(): Promise<void>;
  /** The last lines of the daemon's log, for failure messages. */
  logTail(lines?: number): string;
}

export interface PrivateDockerdOptions {
  /** Import the local test image (scripts/make-test-image.sh) once the engine is up. Default true. */
  withTestImage?: boolean;
  /** How long start() waits for the engine to answer. Default 60 s. */
  startTimeoutMs?: number;
}

/** Starts a private engine under a fresh directory (AGENTORCH_FAULT_DOCKERD_ROOT or the temp dir). */
export async function startPrivateDockerd(options: PrivateDockerdOptions = {}): Promise<PrivateDockerd> {
  const support = privateDockerdSupport();
  if (!support.ok) throw new Error(`cannot run a private dockerd: ${support.why}`);
  const parent = process.env.AGENTORCH_FAULT_DOCKERD_ROOT || tmpdir();
  // Short: the socket path must fit in sun_path (108 bytes), with containerd's below exec/.
  const dir = mkdtempSync(path.join(parent, "agentorch-fault-"));
  const d = new Dockerd(support.dockerd, support.unshare, dir, options.startTimeoutMs ?? 60_000);
  try {
    await d.start();
    if (options.withTestImage ?? true) {
      const made = spawnSync("bash", ["scripts/make-test-image.sh"], {
        cwd: REPO_ROOT,
        env: { ...process.env, DOCKER_HOST: d.dockerHost },
        encoding: "utf8",
      });
      if (made.status !== 0) throw new Error(`make-test-image.sh failed on the private engine: ${made.stderr}`);
    }
  } catch (err) {
    await d.destroy();
    throw err;
  }
  return d;
}

class Dockerd implements PrivateDockerd {
  readonly dockerHost: string;
  readonly socketPath: string;
  readonly docker: Dockerode;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private readonly logPath: string;
  private readonly onProcessExit = () => this.child?.kill("SIGKILL");

  constructor(
    private readonly binary: string,
    private readonly unshare: string,
    readonly dir: string,
    private readonly startTimeoutMs: number,
  ) {
    this.socketPath = path.join(dir, "docker.sock");
    this.dockerHost = `unix://${this.socketPath}`;
    this.logPath = path.join(dir, "dockerd.log");
    this.docker = new Dockerode({ socketPath: this.socketPath });
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  async start(): Promise<void> {
    if (this.child) return;
    // A containerd left by a daemon that died hard would hold the exec root's socket.
    await this.waitContainerdGone(10_000);
    rmSync(path.join(this.dir, "docker.pid"), { force: true });
    const log = openSync(this.logPath, "a");
    // unshare execs dockerd: the child's pid is the daemon's.
    const child = spawn(
      this.unshare,
      [
        "--net",
        "--",
        this.binary,
        `--host=${this.dockerHost}`,
        `--data-root=${path.join(this.dir, "data")}`,
        `--exec-root=${path.join(this.dir, "exec")}`,
        `--pidfile=${path.join(this.dir, "docker.pid")}`,
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-masq=false",
        "--userland-proxy=false",
      ],
      { stdio: ["ignore", log, log] },
    );
    closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    process.once("exit", this.onProcessExit);
    const deadline = Date.now() + this.startTimeoutMs;
    let exitedEarly = false;
    void this.exited.then(() => (exitedEarly = true));
    for (;;) {
      if (exitedEarly) {
        this.child = undefined;
        throw new Error(`private dockerd exited at start:\n${this.logTail()}`);
      }
      if (existsSync(this.socketPath)) {
        try {
          await this.docker.ping();
          return;
        } catch {
          // not yet
        }
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`private dockerd did not answer within ${this.startTimeoutMs} ms:\n${this.logTail()}`);
      }
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const containerdPid = this.containerdPid();
    child.kill("SIGTERM");
    // dockerd stops its containers (up to their stop timeout, 10 s) and then containerd.
    // A hung engine (libnetwork deadlock, see test/fault/support/engine.ts) may never finish.
    const gone = await Promise.race([this.exited!.then(() => true), sleep(30_000).then(() => false)]);
    if (!gone) {
      child.kill("SIGKILL");
      await this.exited;
    }
    process.off("exit", this.onProcessExit);
    this.child = undefined;
    await this.waitContainerdGone(20_000, containerdPid);
  }

  async destroy(): Promise<void> {
    await this.stop().catch(() => undefined);
    // containerd shims outlive a containerd that was killed; only ours name this directory.
    for (const pid of processesNaming(this.dir)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    // Leftover mounts (overlay layers, netns, shm) would make the removal fail.
    const mounts = readFileSync("/proc/self/mounts", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[1] ?? "")
      .map((p) => p.replace(/\\040/g, " "))
      .filter((p) => p.startsWith(this.dir + "/"))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync("umount", ["-l", m]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logPath, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "(no dockerd log)";
    }
  }

  private containerdPid(): number | undefined {
    try {
      const pid = Number(readFileSync(path.join(this.dir, "exec", "containerd", "containerd.pid"), "utf8").trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  private async waitContainerdGone(timeoutMs: number, pid = this.containerdPid()): Promise<void> {
    if (pid === undefined) return;
    const deadline = Date.now() + timeoutMs;
    while (alive(pid) && isContainerdOf(pid, this.dir)) {
      if (Date.now() > deadline) {
        process.kill(pid, "SIGKILL");
        await sleep(200);
        return;
      }
      await sleep(100);
    }
  }
}

/** Pids of processes whose command line names dir (this engine's daemon, containerd, shims). */
function processesNaming(dir: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(`${dir}/`)) out.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Guards against a reused pid: only a containerd whose command line names this directory counts. */
function isContainerdOf(pid: number, dir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir);
  } catch {
    return false;
  }
}
