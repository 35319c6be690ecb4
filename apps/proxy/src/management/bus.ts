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
  /** Called when a publish fails (Redis down): other instances then catch up by their refresh interval. */
  onError?: (err: unknown) => void;
}

const KINDS = new Set<string>(["key", "user", "team", "member", "organization", "budget", "end_user"]);

/**
 * Cache invalidation over Redis pub/sub: every instance sharing the Redis hears every change within milliseconds.
 * Messages are `<instance>\t<kind>\t<id>`; an instance ignores its own. When the subscriber reconnects (messages may
 * have been lost meanwhile) the listeners get `"*"`: drop everything and reload on demand.
 */
export async function createRedisBus(options: RedisBusOptions): Promise<InvalidationBus> {
  const channel = options.channel ?? "tollgate:invalidate";
  const me = randomBytes(8).toString("hex");
  const handlers: Array<(kind: EntityKind | "*", id: string) => void> = [];
  const emit = (kind: EntityKind | "*", id: string) => {
    for (const h of handlers) h(kind, id);
  };
  let lostConnection = false;
  options.subscriber.on("close", () => {
    lostConnection = true;
  });
  options.subscriber.on("ready", () => {
    if (lostConnection) {
      lostConnection = false;
      emit("*", "");
    }
  });
  options.subscriber.on("message", (ch, message) => {
    if (ch !== channel) return;
    const [from, kind, ...rest] = message.split("\t");
    if (from === me || kind === undefined || !KINDS.has(kind)) return;
    emit(kind as EntityKind, rest.join("\t"));
  });
  await options.subscriber.subscribe(channel);
  let closed = false;
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
