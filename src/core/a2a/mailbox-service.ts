/**
 * Durable A2A mailboxes behind SendMessage, StreamMessages, AckMessages and SendAndWait.
 *
 * - Send: both agents must be registered (an agent may send to itself). The message is
 *   stored in the receiver's mailbox, with the next sequence (1, 2, 3… gap-free per
 *   mailbox) and a UUID, in one transaction before send() returns; then live readers of
 *   that mailbox are woken. Limits: message size (INVALID_ARGUMENT); unacknowledged
 *   messages and bytes per sender in a mailbox, then per mailbox (RESOURCE_EXHAUSTED,
 *   naming the setting). The per-sender quota is the smaller: one agent flooding another
 *   stops at it, and the box keeps room for everyone else (other agents, an operator).
 * - Stream: unacknowledged messages after max(resume_after_sequence, acknowledged) in
 *   order, then live ones (see message-stream.ts). Delivery is at least once: what is not
 *   acknowledged comes again on the next stream. Several readers of one mailbox each get
 *   every message; acknowledgements are the mailbox's, shared by all of them. Messages
 *   sent while the receiver was stopped simply wait in its mailbox. A resume_after_sequence
 *   beyond the newest message is INVALID_ARGUMENT (like Ack), rather than a silent wait.
 * - Ack: monotonic; a lower or repeated sequence is a no-op; one beyond the newest
 *   message is INVALID_ARGUMENT (as the proto says). Acknowledged messages are kept for a
 *   retention (time, and a count per mailbox), then pruned by a timer.
 * - SendAndWait: sends a task_delegation, then waits for a result_sharing message from
 *   the receiver to the sender with the same task_id, stored after the delegation. The
 *   reply is not consumed: it stays in the sender's mailbox like any other message.
 * - Removing an agent deletes its mailbox (messages and counters): a later agent with the
 *   same id starts a new mailbox at sequence 1. Open readers of it end with NOT_FOUND.
 */
import { randomUUID } from "node:crypto";
import type { AgentService } from "../agent-service.js";
import { AgentorchError, invalidArgument, notFound, unavailable } from "../errors.js";
import type { EventBus } from "../event-bus.js";
import type { Clock, Logger, StoredEvent } from "../ports.js";
import { MailboxHub } from "./mailbox-hub.js";
import { type MessageInput, type NewMessage, type StoredMessage, validateMessage } from "./message.js";
import { type MailboxItem, streamMailbox } from "./message-stream.js";
import type { MailboxStore } from "./ports.js";

export interface MailboxConfig {
  /** Largest message (its JSON form), bytes. The proto promises 256 KiB. */
  maxMessageBytes: number;
  /** Unacknowledged messages a mailbox holds before sends to it are RESOURCE_EXHAUSTED. */
  maxUnackedMessages: number;
  /** Their total size, bytes. */
  maxUnackedBytes: number;
  /** Unacknowledged messages one sender may have in one mailbox. */
  maxUnackedPerSender: number;
  /** Their total size, bytes. */
  maxUnackedBytesPerSender: number;
  /** An idle stream gets a keep-alive this often; 0 disables. */
  keepAliveMs: number;
  /** Live messages held for a stream reader that does not keep up, before it is cut off. */
  streamBufferMessages: number;
  streamBufferBytes: number;
  /** Acknowledged messages are deleted this long after their acknowledgement… */
  ackedRetentionMs: number;
  /** …or sooner, beyond the newest this many acknowledged ones of their mailbox. */
  ackedRetentionCount: number;
  /** How often the retention is applied; 0 disables the timer (prune() still works). */
  pruneIntervalMs: number;
}

export const DEFAULT_MAILBOX_CONFIG: Readonly<MailboxConfig> = {
  maxMessageBytes: 256 * 1024,
  maxUnackedMessages: 10_000,
  maxUnackedBytes: 64 * 1024 * 1024,
  maxUnackedPerSender: 1000,
  maxUnackedBytesPerSender: 16 * 1024 * 1024,
  keepAliveMs: 30_000,
  streamBufferMessages: 1000,
  streamBufferBytes: 8 * 1024 * 1024,
  ackedRetentionMs: 24 * 3600 * 1000,
  ackedRetentionCount: 1000,
  pruneIntervalMs: 60_000,
};

/** The variable that sets each bound, named in the error that reports it (see src/server/config.ts). */
export const MAILBOX_SETTINGS = {
  maxUnackedMessages: "AGENTORCH_MAILBOX_MAX_MESSAGES",
  maxUnackedBytes: "AGENTORCH_MAILBOX_MAX_BYTES",
  maxUnackedPerSender: "AGENTORCH_MAILBOX_MAX_PER_SENDER",
  maxUnackedBytesPerSender: "AGENTORCH_MAILBOX_MAX_BYTES_PER_SENDER",
} as const;

/** SendAndWait: the wait when none is given, and the longest allowed (the proto's). */
export const SEND_AND_WAIT = { defaultTimeoutMs: 30_000, maxTimeoutMs: 10 * 60_000 } as const;

const READ_BATCH = 100;
const READ_BATCH_BYTES = 4 * 1024 * 1024;
const PRUNE_BATCH = 5000;

export interface MailboxServiceDeps {
  mailboxes: MailboxStore;
  agents: Pick<AgentService, "get" | "find">;
  bus: EventBus;
  clock: Clock;
  logger: Logger;
  config?: Partial<MailboxConfig>;
  /** Called once a message is stored for an agent (the composition root resumes a paused recipient). */
  onDelivered?: (toAgentId: string) => void;
}

export interface SendResult {
  messageId: string;
  sequence: number;
}

export interface SendAndWaitResult extends SendResult {
  reply: StoredMessage;
}

export class MailboxService {
  readonly config: MailboxConfig;
  readonly hub: MailboxHub;
  private readonly logger: Logger;
  private readonly unsubscribe: () => void;
  private pruneTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly deps: MailboxServiceDeps) {
    this.config = { ...DEFAULT_MAILBOX_CONFIG, ...deps.config };
    this.logger = deps.logger.child({ component: "mailboxes" });
    this.hub = new MailboxHub(this.logger);
    this.unsubscribe = deps.bus.subscribe((e) => this.onEvent(e));
  }

  /** Deletes mailboxes whose agent is gone (removed while the service was down) and starts the retention timer. */
  open(): void {
    for (const agentId of this.deps.mailboxes.mailboxIds()) {
      if (!this.deps.agents.find(agentId)) {
        const n = this.deps.mailboxes.deleteMailbox(agentId);
        this.logger.info({ agentId, messages: n }, "mailbox of a removed agent deleted");
      }
    }
    if (this.config.pruneIntervalMs > 0 && !this.pruneTimer) {
      this.pruneTimer = setInterval(() => {
        try {
          this.prune();
        } catch (err) {
          this.logger.warn({ err }, "pruning acknowledged messages failed");
        }
      }, this.config.pruneIntervalMs);
      this.pruneTimer.unref();
    }
  }

  /** Stops the timer and ends every open stream and SendAndWait with UNAVAILABLE. Call when shutdown begins. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pruneTimer);
    this.unsubscribe();
    this.hub.closeAll(unavailable("the service is shutting down"));
  }

  /** Stores a message in the receiver's mailbox, then wakes its live readers. */
  send(input: MessageInput | undefined): SendResult {
    const message = this.checkSend(validateMessage(input, this.config.maxMessageBytes));
    return this.deliver(message);
  }

  /**
   * The mailbox's unacknowledged messages after resumeAfter, then live ones, until signal
   * aborts. Checks its arguments at once (not at the first read).
   */
  stream(agentId: string, resumeAfter: number, signal: AbortSignal): AsyncGenerator<MailboxItem> {
    this.assertOpen();
    this.deps.agents.get(agentId);
    if (!Number.isSafeInteger(resumeAfter) || resumeAfter < 0) {
      throw invalidArgument("resume_after_sequence must not be negative", { field: "resume_after_sequence" });
    }
    const { lastSequence } = this.deps.mailboxes.state(agentId);
    if (resumeAfter > lastSequence) {
      throw invalidArgument(`resume_after_sequence ${resumeAfter} is beyond the newest message of the mailbox (${lastSequence})`, {
        field: "resume_after_sequence",
        agentId,
      });
    }
    return streamMailbox(this.deps.mailboxes, this.hub, {
      agentId,
      resumeAfter,
      keepAliveMs: this.config.keepAliveMs,
      maxBuffer: this.config.streamBufferMessages,
      maxBufferBytes: this.config.streamBufferBytes,
      batchSize: READ_BATCH,
      batchBytes: READ_BATCH_BYTES,
      signal,
    });
  }

  /** Acknowledges every message up to upTo; returns how many were newly acknowledged. */
  ack(agentId: string, upTo: number): number {
    this.deps.agents.get(agentId);
    if (!Number.isSafeInteger(upTo) || upTo < 1) {
      throw invalidArgument(`up_to_sequence must be at least 1 (got ${upTo})`, { field: "up_to_sequence" });
    }
    const { lastSequence } = this.deps.mailboxes.state(agentId);
    if (upTo > lastSequence) {
      throw invalidArgument(`up_to_sequence ${upTo} is beyond the newest message of the mailbox (${lastSequence})`, {
        field: "up_to_sequence",
        agentId,
      });
    }
    const n = this.deps.mailboxes.ack(agentId, upTo, this.deps.clock.now());
    if (n > 0) this.logger.debug({ agentId, upTo, acknowledged: n }, "messages acknowledged");
    return n;
  }

  /**
   * Sends a task_delegation and waits up to timeoutMs (0: 30 s; at most 10 minutes) and
   * until signal aborts for the receiver's result_sharing reply with the same task_id.
   * DEADLINE_EXCEEDED when none comes in time; the delegation stays sent either way.
   */
  async sendAndWait(input: MessageInput | undefined, timeoutMs: number, signal?: AbortSignal): Promise<SendAndWaitResult> {
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > SEND_AND_WAIT.maxTimeoutMs) {
      throw invalidArgument(`timeout must be between 0 and ${SEND_AND_WAIT.maxTimeoutMs / 1000} seconds`, { field: "timeout" });
    }
    const message = validateMessage(input, this.config.maxMessageBytes);
    if (message.body.kind !== "task_delegation") {
      throw invalidArgument(`SendAndWait sends a task_delegation (got ${message.body.kind})`, { field: "message.kind" });
    }
    this.checkSend(message);
    signal?.throwIfAborted();
    const wait = timeoutMs === 0 ? SEND_AND_WAIT.defaultTimeoutMs : timeoutMs;
    const taskId = message.body.taskId;
    const replier = message.toAgentId;
    let settle: ((r: { reply?: StoredMessage; err?: unknown }) => void) | undefined;
    const outcome = new Promise<{ reply?: StoredMessage; err?: unknown }>((resolve) => {
      settle = resolve;
    });
    // Subscribed before the send: a reply cannot come before we listen.
    const unsubscribe = this.hub.subscribe(message.fromAgentId, {
      onMessage(m) {
        if (m.body.kind === "result_sharing" && m.fromAgentId === replier && m.body.taskId === taskId) settle?.({ reply: m });
      },
      onClosed(err) {
        settle?.({ err });
      },
    });
    const onAbort = () => settle?.({ err: signal?.reason ?? new DOMException("aborted", "AbortError") });
    signal?.addEventListener("abort", onAbort);
    const timer = setTimeout(() => settle?.({}), wait);
    try {
      const sent = this.deliver(message);
      const { reply, err } = await outcome;
      if (err !== undefined) throw err;
      if (!reply) {
        throw new AgentorchError(
          "deadline_exceeded",
          `no result_sharing reply for task "${taskId}" from "${replier}" within ${wait} ms (the delegation stays sent: message ${sent.messageId}, sequence ${sent.sequence})`,
          { agentId: replier },
        );
      }
      return { ...sent, reply };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      unsubscribe();
    }
  }

  /** Applies the retention of acknowledged messages now; returns how many were deleted. */
  prune(): number {
    const cutoff = this.deps.clock.now() - this.config.ackedRetentionMs;
    let total = 0;
    for (;;) {
      // Batches keep each write transaction short.
      const n = this.deps.mailboxes.pruneAcked(cutoff, this.config.ackedRetentionCount, PRUNE_BATCH);
      total += n;
      if (n < PRUNE_BATCH) break;
    }
    if (total > 0) this.logger.debug({ deleted: total }, "acknowledged messages pruned");
    return total;
  }

  /** Registered sender and receiver, room in the receiver's mailbox. Synchronous with the write that follows. */
  private checkSend(message: NewMessage): NewMessage {
    this.assertOpen();
    const { agents } = this.deps;
    if (!agents.find(message.fromAgentId)) {
      throw notFound(`sender agent "${message.fromAgentId}" not found`, { agentId: message.fromAgentId });
    }
    if (!agents.find(message.toAgentId)) {
      throw notFound(`receiver agent "${message.toAgentId}" not found`, { agentId: message.toAgentId });
    }
    const to = message.toAgentId;
    const mine = this.deps.mailboxes.senderState(to, message.fromAgentId);
    const whose = `quota of sender "${message.fromAgentId}" in the mailbox of "${to}" reached`;
    this.checkBound(mine.unackedCount + 1, "maxUnackedPerSender", "MAILBOX_SENDER_QUOTA", to, `${whose}: ${mine.unackedCount} unacknowledged messages`);
    this.checkBound(mine.unackedBytes + message.size, "maxUnackedBytesPerSender", "MAILBOX_SENDER_QUOTA", to, `${whose}: ${mine.unackedBytes} bytes unacknowledged, this message ${message.size}`);
    const state = this.deps.mailboxes.state(to);
    this.checkBound(state.unackedCount + 1, "maxUnackedMessages", "MAILBOX_FULL", to, `the mailbox of "${to}" is full: ${state.unackedCount} unacknowledged messages`);
    this.checkBound(state.unackedBytes + message.size, "maxUnackedBytes", "MAILBOX_FULL", to, `the mailbox of "${to}" is full: ${state.unackedBytes} bytes unacknowledged, this message ${message.size}`);
    return message;
  }

  /** RESOURCE_EXHAUSTED when value exceeds the bound, naming it, its setting and its value. */
  private checkBound(value: number, bound: keyof typeof MAILBOX_SETTINGS, reason: string, agentId: string, what: string): void {
    const limit = this.config[bound];
    if (value <= limit) return;
    const setting = MAILBOX_SETTINGS[bound];
    throw new AgentorchError("resource_exhausted", `${what}; at most ${limit} (${setting})`, { agentId, reason, limit: { setting, value: limit } });
  }

  /** Stores (committed when it returns), then wakes the readers. No await between the checks and here. */
  private deliver(message: NewMessage): SendResult {
    const stored = this.deps.mailboxes.append(message, randomUUID(), this.deps.clock.now());
    this.hub.publish(stored);
    this.deps.onDelivered?.(message.toAgentId);
    return { messageId: stored.messageId, sequence: stored.sequence };
  }

  private assertOpen(): void {
    if (this.closed) throw unavailable("the service is shutting down");
  }

  private onEvent(event: StoredEvent): void {
    if (event.kind !== "agent" || event.type !== "removed") return;
    const n = this.deps.mailboxes.deleteMailbox(event.id);
    this.hub.close(event.id, notFound(`agent "${event.id}" was removed; its mailbox is gone`, { agentId: event.id }));
    if (n > 0) this.logger.info({ agentId: event.id, messages: n }, "mailbox deleted with its agent");
  }
}
