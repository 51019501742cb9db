/**
 * One A2A delivery run: a sender calls SendMessage at a steady rate (open loop: message k
 * is due at k/rate seconds, however slowly earlier ones were answered) while a subscriber
 * on StreamMessages receives them and acknowledges every 100 ms, as an agent would. The
 * latency of a message is from just before its SendMessage call to its arrival on the
 * stream, both timed in this process. The first `warmupS` of messages are not counted.
 */
import { Client } from "./grpc.js";
import type { Msg } from "./grpc.js";
import { summarize } from "./stats.js";
import type { LatencySummary } from "./stats.js";

export interface A2ARun {
  rate: number;
  sent: number;
  delivered: number;
  errors: number;
  firstError?: string;
  /** Messages per second actually sent (the sender may fall behind the schedule). */
  achievedRate: number;
  latency: LatencySummary;
  /** Server CPU time per message sent (send, store, deliver, its share of acks), µs. */
  cpuUsPerMessage: number;
}

const ACK_INTERVAL_MS = 100;

export async function runA2A(
  address: string,
  cpuMs: () => number,
  o: { from: string; to: string; rate: number; warmupS: number; durationS: number },
): Promise<A2ARun> {
  const sender = new Client(address);
  const receiver = new Client(address);
  await Promise.all([sender.waitReady(), receiver.waitReady()]);
  const warmup = Math.round(o.rate * o.warmupS);
  const total = warmup + Math.round(o.rate * o.durationS);
  const sendAt = new Float64Array(total);
  const latencies: number[] = [];
  let delivered = 0;
  let errors = 0;
  let firstError: string | undefined;
  let lastSequence = "0";
  let acked = "0";
  let allDelivered: (() => void) | undefined;
  const stream = receiver.lifeStream("streamMessages", { agentId: o.to });
  stream.on("data", (res: Msg) => {
    const m = res.message as Msg | null;
    if (!m) return; // keep-alive
    const now = performance.now();
    const k = Number((m.statusUpdate as Msg).message);
    if (k >= warmup) latencies.push(now - sendAt[k]!);
    lastSequence = m.sequence as string;
    if (++delivered === total) allDelivered?.();
  });
  let streamError: Error | undefined;
  stream.on("error", (err: Error & { code?: number }) => {
    if (err.code !== 1) streamError = err; // 1: CANCELLED by us
  });
  const ackTimer = setInterval(() => {
    if (lastSequence === acked) return;
    const upTo = lastSequence;
    receiver.life("ackMessages", { agentId: o.to, upToSequence: upTo }).then(
      () => (acked = upTo),
      () => undefined,
    );
  }, ACK_INTERVAL_MS);

  const send = (k: number) => {
    sendAt[k] = performance.now();
    sender
      .life("sendMessage", { message: { fromAgentId: o.from, toAgentId: o.to, statusUpdate: { taskId: "bench", progress: 0, message: String(k) } } }, 30_000)
      .catch((err: Error) => {
        errors++;
        firstError ??= err.message;
      });
  };
  const t0 = performance.now();
  const cpu0 = cpuMs();
  let k = 0;
  while (k < total && streamError === undefined) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) * o.rate) / 1000) + 1);
    while (k < due) send(k++);
    await new Promise((r) => setTimeout(r, 1));
  }
  const sendS = (performance.now() - t0) / 1000;
  // Everything sent should arrive within a few seconds; what does not counts as lost.
  if (delivered < total && streamError === undefined && errors === 0) {
    await new Promise<void>((resolve) => {
      allDelivered = resolve;
      setTimeout(resolve, 5_000);
    });
  }
  const cpu = cpuMs() - cpu0;
  clearInterval(ackTimer);
  if (lastSequence !== "0") await receiver.life("ackMessages", { agentId: o.to, upToSequence: lastSequence }).catch(() => undefined);
  stream.cancel();
  sender.close();
  receiver.close();
  if (streamError) {
    errors++;
    firstError ??= `stream: ${streamError.message}`;
  }
  return { rate: o.rate, sent: k, delivered, errors, firstError, achievedRate: k / sendS, latency: summarize(latencies), cpuUsPerMessage: (cpu * 1000) / Math.max(1, k) };
}
