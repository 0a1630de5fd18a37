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
  /** Drawn as bars of this share of a bucket, on one side of it (-1 left, 0 centred, 1 right). */
  bars?: { size: number; align: -1 | 0 | 1 };
}

const line = (s: Series) => ({ label: s.label, stroke: s.color, width: 2, points: { show: true, size: 6 } });
const bars = (s: Series & { bars: NonNullable<Series['bars']> }) => ({
  label: s.label,
  stroke: s.color,
  fill: s.color,
  width: 1,
  points: { show: false },
  paths: uPlot.paths.bars!({ size: [s.bars.size, 80], align: s.bars.align }),
});

/** The viewer's time zone, as the browser names it (e.g. Europe/Berlin). */
export const viewerZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone;

/** `data` is [x values (seconds since the epoch), ...one array per series (null: no value)]. */
export function LineChart({
  title,
  series,
  data,
  yLabel,
  xLabel = `Time (${viewerZone()}, your time zone)`,
  bucketS = 0,
}: {
  title: string;
  series: Series[];
  data: (number | null)[][];
  yLabel: string;
  xLabel?: string;
  /** The width of a bucket (seconds): the x axis leaves half of one on each side, for bars. */
  bucketS?: number;
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
        series: [{}, ...series.map((s) => (s.bars ? bars({ ...s, bars: s.bars }) : line(s)))],
        scales: {
          x: { time: true, range: (_u, min, max) => [min - bucketS / 2, max + bucketS / 2] },
          // Counts and durations start at zero.
          y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        },
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
