/**
 * A tiny typed listener list (no `node:events`, so it runs on edge runtimes too).
 */
export type Listener<E> = (event: E) => void;

export class Listeners<E> {
  private list: Array<Listener<E>> = [];

  /** Adds a listener; returns a function that removes it. */
  add(listener: Listener<E>): () => void {
    this.list = [...this.list, listener];
    return () => {
      this.list = this.list.filter((l) => l !== listener);
    };
  }

  /** Calls every listener; a throwing listener never breaks the store or the other listeners. */
  emit(event: E): void {
    for (const l of this.list) {
      try {
        l(event);
      } catch {
        // listeners are observers; their failures are theirs
      }
    }
  }
}
