/**
 * Interned store keys of descriptors: `{scope:value}` built and hashed once per scope and value, with the
 * in-process store's handles of the key's window and gauge from the last admission (hints the store checks).
 */
import { descriptorKey, validateIdentity } from "./scopes.js";
import type { Descriptor } from "./types.js";

/** An interned key and the in-process store's handles of its window and in-flight gauge (opaque hints). */
export interface KeySlot {
  readonly key: string;
  handle: unknown;
  gaugeHandle: unknown;
}

/** Most interned keys kept (about 10 MB at worst) before starting over. */
const KEY_CACHE = 100_000;
/** Scopes looked up by identity before falling back to a Map. */
const QUICK_SCOPES = 16;

/**
 * The key cache of one engine. A freshly concatenated key must be flattened and hashed on its first lookup (about
 * 100 ns); an interned one was hashed once. Bounded: cleared when it outgrows {@link KEY_CACHE}.
 */
export class KeyCache {
  private readonly byScope = new Map<string, Map<string, KeySlot>>();
  private count = 0;
  /** The first scopes seen, for a lookup by identity (scopes are few and usually string constants). */
  private readonly scopeNames: string[] = [];
  private readonly scopeMaps: Array<Map<string, KeySlot>> = [];

  /**
   * The slot of a descriptor's scope and value. A pair is checked ({@link validateIdentity}) before it is interned,
   * so a hit needs no check; anything that is not an object throws the typed error.
   */
  slotOf(d: Descriptor): KeySlot {
    if (typeof d !== "object" || d === null) return this.intern(d);
    const scope = d.scope;
    const names = this.scopeNames;
    let byValue: Map<string, KeySlot> | undefined;
    for (let i = 0; i < names.length; i++) {
      if (names[i] === scope) {
        byValue = this.scopeMaps[i];
        break;
      }
    }
    if (byValue === undefined && names.length === QUICK_SCOPES) byValue = this.byScope.get(scope);
    return byValue?.get(d.value) ?? this.intern(d);
  }

  private intern(d: Descriptor): KeySlot {
    validateIdentity(d);
    if (this.count >= KEY_CACHE) {
      this.byScope.clear();
      this.scopeNames.length = 0;
      this.scopeMaps.length = 0;
      this.count = 0;
    }
    let byValue = this.byScope.get(d.scope);
    if (byValue === undefined) {
      byValue = new Map();
      this.byScope.set(d.scope, byValue);
      if (this.scopeNames.length < QUICK_SCOPES) {
        this.scopeNames.push(d.scope);
        this.scopeMaps.push(byValue);
      }
    }
    const slot: KeySlot = { key: descriptorKey(d), handle: undefined, gaugeHandle: undefined };
    byValue.set(d.value, slot);
    this.count++;
    return slot;
  }
}
