/**
 * A line chart (uPlot) with labelled axes. The x axis is time, drawn in the viewer's time zone,
 * which its label names; a null value is a gap, never drawn as zero.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  color: string;
}

/** The viewer's time zone, as the browser names it (e.g. Europe/Berlin). */
export const viewerZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone;

/** `data` is [x values (seconds since the epoch), ...one array per series (null: no value)]. */
export function LineChart({
  title,
  series,
  data,
  yLabel,
  xLabel = `Time (${viewerZone()}, your time zone)`,
}: {
  title: string;
  series: Series[];
  data: (number | null)[][];
  yLabel: string;
  xLabel?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const element = box.current!;
    const width = () => Math.max(260, element.clientWidth);
    plot.current = new uPlot(
      {
        width: width(),
        height: 200,
        series: [
          {},
          ...series.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 2,
            points: { show: true, size: 4 },
          })),
        ],
        axes: [
          { label: xLabel, labelSize: 24 },
          { label: yLabel, labelSize: 24, size: 50 },
        ],
        legend: { live: false },
      },
      data as uPlot.AlignedData,
      element,
    );
    const resize = () => plot.current?.setSize({ width: width(), height: 200 });
    addEventListener('resize', resize);
    return () => {
      removeEventListener('resize', resize);
      plot.current?.destroy();
    };
  }, []);
  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data]);
  return <div class="chart" ref={box} role="img" aria-label={title} />;
}
