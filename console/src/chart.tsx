import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  color: string;
}

/** A line chart; `data` is [x values (seconds), ...one array per series]. */
export function LineChart({ title, series, data }: { title: string; series: Series[]; data: number[][] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const element = box.current!;
    const width = () => Math.max(260, element.clientWidth);
    plot.current = new uPlot(
      {
        width: width(),
        height: 180,
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2 }))],
        axes: [{}, { size: 40 }],
        legend: { live: false },
      },
      data as uPlot.AlignedData,
      element,
    );
    const resize = () => plot.current?.setSize({ width: width(), height: 180 });
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
