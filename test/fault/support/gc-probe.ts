/**
 * Test-only preload for the service process (node --expose-gc --import gc-probe.ts):
 * on SIGUSR2 it runs a full garbage collection and prints the process's memory figures
 * on stderr as one "AGENTORCH_MEMORY {json}" line. The load test compares them before
 * and after a load run, so a leak shows as retained heap, not as allocator noise.
 */
import { performance } from "node:perf_hooks";

const gc = (globalThis as { gc?: () => void }).gc;

process.on("SIGUSR2", () => {
  // Twice: the first pass can leave objects with finalizers or weak references for the next.
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  process.stderr.write(
    `AGENTORCH_MEMORY ${JSON.stringify({
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      cpuUserMs: cpu.user / 1000,
      cpuSystemMs: cpu.system / 1000,
      eventLoopActiveMs: elu.active,
      eventLoopIdleMs: elu.idle,
    })}\n`,
  );
});
