/**
 * In-process fan-out of committed store events. The core publishes an event only
 * after the store call that wrote it has returned (i.e. committed), so a subscriber
 * never sees a change that could still roll back.
 */
import type { Logger, StoredEvent } from "./ports.js";

export type EventListener = (event: StoredEvent) => void;

export class EventBus {
  private readonly listeners = new Set<EventListener>();

  constructor(private readonly logger?: Logger) {}

  /** Delivers to every listener; a throwing listener is logged and does not stop the others. */
  publish(event: StoredEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.logger?.error({ err, revision: event.revision }, "event listener failed");
      }
    }
  }

  /** Returns the function that unsubscribes. */
  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }
}
