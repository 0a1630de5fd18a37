export const ms = (value: number | null | undefined) =>
  value === null || value === undefined
    ? '—'
    : value < 1000
      ? `${Math.round(value)} ms`
      : `${(value / 1000).toFixed(2)} s`;

export const percent = (value: number | null | undefined) =>
  value === null || value === undefined
    ? '—'
    : `${(value * 100).toFixed(value < 0.1 && value > 0 ? 1 : 0)} %`;

export const time = (value: number | null | undefined) =>
  value === null || value === undefined ? '—' : new Date(value).toLocaleString();

/** The browser's time zone: the console's times are in it unless labelled otherwise. */
export const VIEWER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

/** `YYYY-MM-DD HH:mm` on the wall clock of a zone. */
function wallClock(value: number, timeZone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(new Date(value))
      .map((part) => [part.type, part.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

/** A time in a schedule's zone, and in the viewer's when that differs: both labelled. */
export function inZones(value: number | null | undefined, zone: string): string {
  if (value === null || value === undefined) return '—';
  const there = `${wallClock(value, zone)} ${zone}`;
  return zone === VIEWER_ZONE ? there : `${there} (${wallClock(value, VIEWER_ZONE)} ${VIEWER_ZONE}, yours)`;
}

/** The smallest width a bar is drawn with, in % of its track, so that an instant still shows. */
const MIN_BAR = 0.4;

/**
 * Where a bar from `from` to `to` sits on an axis (`origin`, `span` ms), in % of its track: never
 * outside it, even when a piece of the run ends after the axis does (times are whole ms, so an
 * attempt of a few ms can end a little past the run it belongs to).
 */
export function barPlacement(
  axis: { origin: number; span: number },
  from: number,
  to: number,
): { left: number; width: number } {
  const left = Math.min(100 - MIN_BAR, Math.max(0, ((from - axis.origin) / axis.span) * 100));
  const width = Math.max(MIN_BAR, ((to - Math.max(from, axis.origin)) / axis.span) * 100);
  return { left, width: Math.min(100 - left, width) };
}
