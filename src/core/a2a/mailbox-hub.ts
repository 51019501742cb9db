/**
 * In-process fan-out of messages just stored, to the live readers of each mailbox
 * (streams and SendAndWait waiters). Only committed messages are published, in sequence
 * order per mailbox: the mailbox service publishes right after the store call returns,
 * with no await in between. Nothing is kept here: a reader that misses a message (it was
 * not subscribed yet) reads it from the store.
 */
import type { AgentorchError } from "../errors.js";
import type { Logger } from "../ports.js";
import type { StoredMessage } from "./message.js";

/** A live reader of one mailbox. */
export interface MailboxSubscriber {
  onMessage(message: StoredMessage): void;
  /** The mailbox is gone (its agent was removed) or the service is closing: the reader ends with err. */
  onClosed(err: AgentorchError): void;
}

export class MailboxHub {
  private readonly subscribers = new Map<string, Set<MailboxSubscriber>>();

  constructor(private readonly logger: Logger) {}

  /** Returns the function that unsubscribes. */
  subscribe(agentId: string, subscriber: MailboxSubscriber): () => void {
    let set = this.subscribers.get(agentId);
    if (!set) this.subscribers.set(agentId, (set = new Set()));
    set.add(subscriber);
    return () => {
      const current = this.subscribers.get(agentId);
      if (!current) return;
      current.delete(subscriber);
      if (current.size === 0) this.subscribers.delete(agentId);
    };
  }

  /** Delivers to every subscriber of the message's mailbox; a throwing one is logged and does not stop the others. */
  publish(message: StoredMessage): void {
    const set = this.subscribers.get(message.toAgentId);
    if (!set) return;
    for (const s of [...set]) {
      try {
        s.onMessage(message);
      } catch (err) {
        this.logger.error({ err, agentId: message.toAgentId, sequence: message.sequence }, "mailbox subscriber failed");
      }
    }
  }

  /** Ends every reader of one mailbox with err. */
  close(agentId: string, err: AgentorchError): void {
    const set = this.subscribers.get(agentId);
    if (!set) return;
    this.subscribers.delete(agentId);
    for (const s of set) s.onClosed(err);
  }

  /** Ends every reader of every mailbox with err. */
  closeAll(err: AgentorchError): void {
    for (const agentId of [...this.subscribers.keys()]) this.close(agentId, err);
  }

  /** Live readers of a mailbox (for tests and metrics). */
  count(agentId: string): number {
    return this.subscribers.get(agentId)?.size ?? 0;
  }
}
