/** uPlot drawing, loaded only when a chart is shown (keeps uPlot out of the first page load). */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export const PALETTE = [
  "#2563eb",
  "#16a34a",
  "#d97706",
  "#9333ea",
  "#dc2626",
  "#0891b2",
  "#65a30d",
  "#db2777",
  "#475569",
];

export interface BarsInput {
  days: string[];
  series: { label: string; values: number[] }[];
  format: (n: number) => string;
  height: number;
}

/**
 * Stacked daily bars: series are drawn as cumulative sums (tallest first, so the lower ones paint over it); the legend
 * shows each day's own values. Returns the cleanup.
 */
export function drawStackedBars(el: HTMLElement, input: BarsInput): () => void {
  const xs = input.days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
  const cum: number[][] = [];
  let acc = input.days.map(() => 0);
  for (const s of input.series) {
    acc = acc.map((v, i) => v + (s.values[i] ?? 0));
    cum.push(acc);
  }
  const order = input.series.map((_, i) => i).reverse();
  const bars = uPlot.paths.bars!({ size: [0.7, 60], align: 0 });
  const fmt = input.format;
  const width = () => Math.max(320, el.clientWidth);
  const opts: uPlot.Options = {
    width: width(),
    height: input.height,
    padding: [12, 8, 0, 0],
    legend: { show: input.series.length > 0, live: true },
    cursor: { points: { show: false }, drag: { x: false, y: false } },
    scales: {
      x: { time: true, range: (_u, min, max) => [min - 43_200, max + 43_200] },
      y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    axes: [
      {
        values: (_u, ticks) => ticks.map((t) => new Date(t * 1000).toISOString().slice(5, 10)),
        incrs: [86_400, 2 * 86_400, 7 * 86_400, 14 * 86_400, 28 * 86_400],
        space: 50,
      },
      { values: (_u, ticks) => ticks.map((t) => fmt(t)), size: 80 },
    ],
    series: [
      { label: "Day", value: (_u, v) => (v === null ? "" : new Date(v * 1000).toISOString().slice(0, 10)) },
      ...order.map((i) => ({
        label: input.series[i]!.label,
        stroke: PALETTE[i % PALETTE.length],
        fill: PALETTE[i % PALETTE.length],
        width: 0,
        paths: bars,
        points: { show: false },
        value: (_u: uPlot, _v: number | null, _si: number, idx: number | null) =>
          idx === null ? "" : fmt(input.series[i]!.values[idx] ?? 0),
      })),
    ],
  };
  const plot = new uPlot(opts, [xs, ...order.map((i) => cum[i]!)] as uPlot.AlignedData, el);
  const ro = new ResizeObserver(() => plot.setSize({ width: width(), height: input.height }));
  ro.observe(el);
  return () => {
    ro.disconnect();
    plot.destroy();
  };
}
