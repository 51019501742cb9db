/**
 * 6. Start-up of the compiled build against the same sources run through tsx: the time
 * from spawning the process until its port accepts connections, and its RSS then and
 * after two quiet seconds. Runs alternate (and alternate which goes first); the compiled
 * build is made first (`npm run build`). No engine needed: the service starts without one.
 */
import { execFileSync } from "node:child_process";
import type { BenchContext, BenchResult } from "./lib/report.js";
import { REPO_ROOT, startService } from "./lib/service-process.js";
import { spread } from "./lib/stats.js";

interface Sample {
  readyMs: number;
  rssReady: number;
  rssSettled: number;
}

async function sample(compiled: boolean, ctx: BenchContext): Promise<Sample> {
  const service = await startService({ compiled, nodeArgs: ctx.serviceNodeArgs, env: { AGENTORCH_LOG_LEVEL: "warn" } });
  try {
    const rssReady = service.rssMiB();
    await new Promise((r) => setTimeout(r, 2000));
    return { readyMs: service.readyMs, rssReady, rssSettled: service.rssMiB() };
  } finally {
    await service.stop();
  }
}

export async function startup(ctx: BenchContext): Promise<BenchResult> {
  const title = "6. Start-up: compiled (node dist/) vs tsx";
  execFileSync("npm", ["run", "build", "--silent"], { cwd: REPO_ROOT, stdio: "inherit" });
  const runs = ctx.quick ? 3 : 10;
  const compiled: Sample[] = [];
  const tsx: Sample[] = [];
  for (let i = 0; i < runs; i++) {
    const order = i % 2 === 0 ? [true, false] : [false, true];
    for (const c of order) (c ? compiled : tsx).push(await sample(c, ctx));
    ctx.log(`startup run ${i + 1}/${runs}: compiled ${Math.round(compiled.at(-1)!.readyMs)} ms, tsx ${Math.round(tsx.at(-1)!.readyMs)} ms`);
  }
  const fig = (name: string, pick: (s: Sample) => number) => {
    const a = spread(compiled.map(pick));
    const b = spread(tsx.map(pick));
    return { name, agentorch: a, baseline: b, baselineName: "tsx (sources)", ratio: a.median / b.median };
  };
  return {
    id: "startup",
    title,
    figures: [
      fig("spawn until the port accepts, median (ms)", (s) => s.readyMs),
      fig("RSS when ready (MiB)", (s) => s.rssReady),
      fig("RSS after 2 s (MiB)", (s) => s.rssSettled),
    ],
    notes: [`${runs} runs each, alternating; agentorch = node dist/src/server/main.js, baseline = node --import tsx src/server/main.ts`],
    details: { compiled, tsx },
  };
}
