import { randomBytes } from "node:crypto";
import type { EntityKind, InvalidationBus } from "./cache.js";

/** The part of an ioredis client (standalone or Cluster) the bus uses. */
export interface RedisPubSubClient {
  publish(channel: string, message: string): Promise<unknown>;
  subscribe(channel: string): Promise<unknown>;
  on(event: "message", listener: (channel: string, message: string) => void): unknown;
  on(event: "ready" | "close", listener: () => void): unknown;
  quit(): Promise<unknown>;
}

/** Options of {@link createRedisBus}. */
export interface RedisBusOptions {
  /** A connection for publishing. The bus quits it on close. */
  publisher: RedisPubSubClient;
  /** A dedicated connection: it enters subscriber mode. The bus quits it on close. */
  subscriber: RedisPubSubClient;
  /** @default "tollgate:invalidate" */
  channel?: string;
  /**
   * Called when a publish or a subscription fails (Redis down): other instances then catch up by their refresh
   * interval, and this one drops its whole cache once its subscription is back.
   */
  onError?: (err: unknown) => void;
  /**
   * How long {@link createRedisBus} waits for the first subscription before it returns anyway (Redis down or frozen
   * at start): the subscription then completes in the background, when Redis answers. `0` does not wait.
   * @default 2000
   */
  startWaitMs?: number;
}

const KINDS = new Set<string>(["key", "user", "team", "member", "organization", "budget", "end_user"]);

/**
 * Cache invalidation over Redis pub/sub: every instance sharing the Redis hears every change within milliseconds.
 * Messages are `<instance>\t<kind>\t<id>`; an instance ignores its own. Each time Redis confirms the subscription
 * (after a reconnect, or Redis coming up after the process started without it: messages may have been lost
 * meanwhile) the listeners get `"*"`: drop everything and reload on demand.
 *
 * Redis being unreachable never fails the bus: it subscribes again on every reconnection of the subscriber
 * connection until Redis confirms.
 */
export async function createRedisBus(options: RedisBusOptions): Promise<InvalidationBus> {
  const channel = options.channel ?? "tollgate:invalidate";
  const me = randomBytes(8).toString("hex");
  const handlers: Array<(kind: EntityKind | "*", id: string) => void> = [];
  const emit = (kind: EntityKind | "*", id: string) => {
    for (const h of handlers) h(kind, id);
  };
  let closed = false;
  let confirmed = false;
  let pending: Promise<void> | undefined;
  let connected = true;
  // Subscribes (again); on each confirmation every listener drops what it cached meanwhile (at start, nothing).
  const subscribe = (): Promise<void> => {
    if (pending !== undefined) return pending;
    pending = options.subscriber.subscribe(channel).then(
      () => {
        pending = undefined;
        if (closed) return;
        connected = true;
        confirmed = true;
        emit("*", "");
      },
      (err: unknown) => {
        pending = undefined;
        if (!closed) options.onError?.(err);
      },
    );
    return pending;
  };
  options.subscriber.on("close", () => {
    connected = false;
  });
  options.subscriber.on("ready", () => {
    // ioredis resubscribes by itself after a reconnect, but only to channels Redis had confirmed; subscribing again
    // is harmless and covers a subscription that never went through (Redis down at start).
    if (!closed && (!connected || !confirmed)) void subscribe();
  });
  options.subscriber.on("message", (ch, message) => {
    if (ch !== channel) return;
    const [from, kind, ...rest] = message.split("\t");
    if (from === me || kind === undefined || !KINDS.has(kind)) return;
    emit(kind as EntityKind, rest.join("\t"));
  });
  const first = subscribe();
  const wait = options.startWaitMs ?? 2_000;
  if (wait > 0) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([first, new Promise<void>((resolve) => (timer = setTimeout(resolve, wait)))]);
    clearTimeout(timer);
  }
  return {
    publish(kind, id) {
      if (closed) return;
      options.publisher.publish(channel, `${me}\t${kind}\t${id}`).catch((err) => options.onError?.(err));
    },
    onMessage(handler) {
      handlers.push(handler);
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([options.subscriber.quit().catch(() => {}), options.publisher.quit().catch(() => {})]);
    },
  };
}
