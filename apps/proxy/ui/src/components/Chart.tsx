import { useEffect, useRef, useState } from "preact/hooks";

export interface ChartSeries {
  label: string;
  values: number[];
}

/**
 * Stacked daily bars (uPlot, loaded on first use). The same numbers are in the table under the charts, for screen
 * readers and tests.
 */
export function StackedBars(props: {
  days: string[];
  series: ChartSeries[];
  format: (n: number) => string;
  label: string;
  height?: number;
}) {
  const host = useRef<HTMLDivElement>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    let cleanup: (() => void) | undefined;
    let cancelled = false;
    import("./chart-impl").then(
      (m) => {
        if (cancelled) return;
        el.replaceChildren();
        cleanup = m.drawStackedBars(el, {
          days: props.days,
          series: props.series,
          format: props.format,
          height: props.height ?? 240,
        });
        el.dataset.ready = "true";
      },
      () => setFailed(true),
    );
    return () => {
      cancelled = true;
      delete el.dataset.ready;
      cleanup?.();
    };
  }, [props.days, props.series, props.format, props.height]);
  return (
    <div ref={host} class="chart" role="img" aria-label={props.label}>
      {failed && <p class="form-error">The chart could not be loaded.</p>}
    </div>
  );
}
