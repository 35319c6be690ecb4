/**
 * Model groups: a public `model_name` with one or more deployments. A request picks deployments in a weighted random
 * order (weight = `weight`, else `rpm`, else `tpm`, else 1, as LiteLLM's simple-shuffle), with deployments this
 * process last saw at their limit moved to the end (still tried: the store decides, and a refund may have freed room).
 */
import type { Target } from "./upstream.js";

export class ModelGroup {
  readonly targets: Target[];
  private readonly weights: number[];
  private readonly total: number;
  /** Per target: until when (ms) it was last denied by its own rpm/tpm. */
  private readonly coolUntil: number[];
  readonly minTpm: number | undefined;

  constructor(
    readonly name: string,
    targets: Target[],
  ) {
    this.targets = targets;
    this.weights = targets.map((t) => Math.max(0, t.deployment.weight));
    this.total = this.weights.reduce((a, b) => a + b, 0);
    this.coolUntil = targets.map(() => 0);
    let min: number | undefined;
    for (const t of targets) {
      const tpm = t.deployment.tpm;
      if (tpm !== undefined && (min === undefined || tpm < min)) min = tpm;
    }
    this.minTpm = min;
  }

  /** Deployments in the order to try them. One deployment: the shared array itself (no allocation). */
  order(now: number): Target[] {
    const n = this.targets.length;
    if (n === 1) return this.targets;
    const left = this.targets.slice();
    const w = this.weights.slice();
    let total = this.total;
    const out: Target[] = [];
    const later: Target[] = [];
    while (left.length > 0) {
      let pick = 0;
      if (total > 0) {
        let r = Math.random() * total;
        for (pick = 0; pick < left.length - 1; pick++) {
          r -= w[pick]!;
          if (r < 0) break;
        }
      } else pick = Math.floor(Math.random() * left.length);
      const t = left[pick]!;
      total -= w[pick]!;
      left.splice(pick, 1);
      w.splice(pick, 1);
      if (this.coolUntil[this.targets.indexOf(t)]! > now) later.push(t);
      else out.push(t);
    }
    for (const t of later) out.push(t);
    return out;
  }

  /** Remembers that `t` denied by its own limit until `until` (ms). */
  cool(t: Target, until: number): void {
    const i = this.targets.indexOf(t);
    if (i >= 0) this.coolUntil[i] = until;
  }
}
