/**
 * `agentorch agents logs`: an agent's output, as `docker logs` shows a container's. The
 * service keeps and serves output in bytes (max_output_bytes per agent); `--tail N`
 * counts lines, so the CLI asks for all that is kept and cuts the last N lines itself.
 */
import type { Command } from "commander";
import { GetAgentOutputResponseSchema, StreamAgentOutputResponseSchema } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { contextOf } from "./context.js";
import { printJson, printJsonLine } from "./output.js";
import { parseCount } from "./parse.js";
import { resolveAgentId } from "./resolve.js";

/** The last n lines of text (a final line without a newline counts as one); all of it when shorter. */
export function lastLines(text: string, n: number): string {
  if (n <= 0) return "";
  let i = text.endsWith("\n") ? text.length - 1 : text.length;
  for (let k = 0; k < n; k++) {
    i = i <= 0 ? -1 : text.lastIndexOf("\n", i - 1);
    if (i < 0) return text;
  }
  return text.slice(i + 1);
}

const LOGS_HELP = `
--tail counts lines in what the service keeps (the agent's max_output_bytes, 256KiB by
default): older output is gone, whatever N is. With -f, the past output comes first, then
new output as it is written.

Examples:
  agentorch agents logs coder --tail 20
  agentorch agents logs -f coder --tail 0      only what is written from now on`;

/** Adds `agents logs` to the agents group. */
export function addLogsCommand(agents: Command): void {
  agents
    .command("logs")
    .alias("output")
    .description("print the output (stdout and stderr) of the agent's current or last container")
    .argument("<id>", "the agent's id (or a unique prefix of it)")
    .option("-f, --follow", "keep printing new output until the container stops (Ctrl-C to stop earlier)")
    .option("--tail <lines>", "only the last N lines of past output (default: all that is kept)")
    .addHelpText("after", LOGS_HELP)
    .action(async (text: string, o: { follow?: boolean; tail?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveAgentId(ctx, text);
      const lines = o.tail === undefined ? undefined : parseCount("--tail", o.tail);
      const cut = (text: string) => (lines === undefined ? text : lastLines(text, lines));
      if (!o.follow) {
        const res = await ctx.clients.agents.getAgentOutput({ agentId: id, maxBytes: 0n }, ctx.unary);
        const output = cut(res.output);
        if (output.length < res.output.length) res.truncated = true;
        res.output = output;
        if (ctx.json) return printJson(GetAgentOutputResponseSchema, res);
        process.stdout.write(res.output);
        return;
      }
      // The service sends the past output (up to tail_bytes, 0: all that is kept) as the
      // stream's first message, then each live chunk as written; when there was no past
      // output yet, the first message is already live and is not cut.
      let first = lines !== undefined && (await ctx.clients.agents.getAgentOutput({ agentId: id, maxBytes: 1n }, ctx.unary)).output !== "";
      const decoder = new TextDecoder();
      for await (const chunk of ctx.clients.agents.streamAgentOutput({ agentId: id, follow: true, tailBytes: 0n })) {
        if (first) chunk.data = new TextEncoder().encode(cut(decoder.decode(chunk.data)));
        first = false;
        if (chunk.data.length === 0) continue;
        if (ctx.json) printJsonLine(StreamAgentOutputResponseSchema, chunk);
        else process.stdout.write(chunk.data);
      }
    });
}
