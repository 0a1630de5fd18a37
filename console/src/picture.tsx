/**
 * An integration drawn as SVG: its triggers on top, the integration with its pattern, its steps
 * (and durable waits) as a chain in the order its runs take them, the connections each step calls
 * as boxes beside it, and the integrations it hands off to or fans out to at the bottom. The
 * layout is a chain with side boxes, so it is placed by hand: a layout library would cost more
 * script than the whole picture. The figures on it are the API's, formatted as the table beside it.
 */
import type { ApiResponse } from '../../src/server/api/routes.js';
import { ms, percent } from './format';
import { PATTERNS, triggerText } from './labels';

export type Picture = ApiResponse<'getIntegrationPicture'>;
type Step = Picture['steps'][number];

const WIDTH = 760;
const CHAIN_X = 24;
const CHAIN_W = 380;
const SIDE_X = 500;
const SIDE_W = 236;
const GAP = 28;
const LINE = 18;

/** A step's figures, as the picture and the table write them. */
export function stepFigures(step: Step): { times: string; failures: string } {
  const times =
    step.kind === 'wait'
      ? `waited p50 ${ms(step.p50)} · p95 ${ms(step.p95)}`
      : `p50 ${ms(step.p50)} · p95 ${ms(step.p95)}`;
  const what = step.kind === 'wait' ? 'timed out' : 'failed';
  return {
    times,
    failures: `${what} ${step.failures} of ${step.executions} (${percent(step.failureShare)})`,
  };
}

export function connectionText(use: { id: string; calls: number; failures: number }): string {
  return `${use.calls} call${use.calls === 1 ? '' : 's'}, ${use.failures} failed`;
}

type Child = Picture['children'][number];

/** How the integration starts a child: a hand-off (sync → async), a fan-out (many per instance) or one start. */
export function childVerb(picture: Picture, child: Child): string {
  if (picture.pattern === 'sync-to-async') return 'hands off to';
  return child.instances > child.parents ? 'fans out to' : 'starts';
}

export function childCounts(child: Child): string {
  return `${plural(child.instances, 'instance')} from ${plural(child.parents, 'recent instance')}`;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

function Box(props: {
  x: number;
  y: number;
  w: number;
  h: number;
  lines: { text: string; strong?: boolean; tone?: 'bad' | 'muted' }[];
  dashed?: boolean;
  tone?: 'wait' | 'trigger' | 'main' | 'connection' | 'child';
  testId?: string;
}) {
  const { x, y, w, h, lines, dashed, tone = 'main' } = props;
  return (
    <g class={`pic-box pic-${tone}`} data-node={props.testId}>
      <rect x={x} y={y} width={w} height={h} rx={8} stroke-dasharray={dashed ? '6 4' : undefined} />
      {lines.map((line, i) => (
        <text
          key={i}
          x={x + 10}
          y={y + 20 + i * LINE}
          class={line.strong ? 'pic-strong' : line.tone ? `pic-${line.tone}-text` : undefined}
        >
          {clip(line.text, Math.floor(w / 7.4))}
        </text>
      ))}
    </g>
  );
}

function Arrow({
  x1,
  y1,
  x2,
  y2,
  dashed,
}: {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  dashed?: boolean;
}) {
  return (
    <line
      x1={x1}
      y1={y1}
      x2={x2}
      y2={y2}
      class="pic-arrow"
      marker-end="url(#pic-head)"
      stroke-dasharray={dashed ? '5 4' : undefined}
    />
  );
}

/** The picture's text alternative: the same facts in one paragraph. */
function describePicture(picture: Picture): string {
  const steps = picture.steps.map((s) => {
    const calls = s.connections.map((c) => c.id).join(', ');
    return `${s.kind === 'wait' ? `wait ${s.name} (${s.waitKind})` : s.name}${calls ? ` calling ${calls}` : ''}`;
  });
  const children = picture.children.map((c) => c.integrationId).join(', ');
  return [
    `Started by: ${picture.triggers.map(triggerText).join('; ') || 'nothing recorded'}.`,
    PATTERNS[picture.pattern],
    steps.length > 0 ? `Steps in order: ${steps.join(', then ')}.` : 'No step recorded.',
    children ? `Starts: ${children}.` : '',
  ]
    .filter(Boolean)
    .join(' ');
}

export function PictureSvg({ picture }: { picture: Picture }) {
  const parts: preact.JSX.Element[] = [];
  let y = 12;
  // Triggers in a row.
  const triggers = picture.triggers;
  const tw = triggers.length === 0 ? 0 : (WIDTH - 2 * CHAIN_X - (triggers.length - 1) * 12) / triggers.length;
  triggers.forEach((trigger, i) => {
    const x = CHAIN_X + i * (tw + 12);
    parts.push(
      <Box
        key={`t${i}`}
        testId={`trigger-${i}`}
        x={x}
        y={y}
        w={tw}
        h={32}
        tone="trigger"
        lines={[{ text: triggerText(trigger) }]}
      />,
    );
    parts.push(
      <Arrow key={`ta${i}`} x1={x + tw / 2} y1={y + 32} x2={CHAIN_X + CHAIN_W / 2} y2={y + 32 + GAP - 2} />,
    );
  });
  if (triggers.length > 0) y += 32 + GAP;
  // The integration and its pattern.
  const recent = picture.recent;
  parts.push(
    <Box
      key="main"
      testId="integration"
      x={CHAIN_X}
      y={y}
      w={CHAIN_W}
      h={66}
      lines={[
        { text: picture.integrationId, strong: true },
        { text: PATTERNS[picture.pattern] },
        {
          text: `${plural(recent.instances, 'recent instance')}, ${plural(recent.runs, 'run')}`,
          tone: 'muted',
        },
      ]}
    />,
  );
  let bottom = y + 66;
  y = bottom + GAP;
  for (const [i, step] of picture.steps.entries()) {
    const figures = stepFigures(step);
    const sideHeight = step.connections.length * 52 - 8;
    const h = Math.max(76, sideHeight);
    parts.push(
      <Arrow key={`sa${i}`} x1={CHAIN_X + CHAIN_W / 2} y1={bottom} x2={CHAIN_X + CHAIN_W / 2} y2={y - 2} />,
    );
    parts.push(
      <Box
        key={`s${i}`}
        testId={`step-${step.name}`}
        x={CHAIN_X}
        y={y}
        w={CHAIN_W}
        h={h}
        tone={step.kind === 'wait' ? 'wait' : 'main'}
        dashed={step.kind === 'wait'}
        lines={[
          {
            text: `${i + 1}. ${step.name}${step.kind === 'wait' ? ` · waits for ${step.waitKind ?? 'a wake-up'}` : ''}`,
            strong: true,
          },
          { text: figures.times },
          { text: figures.failures, ...(step.failures > 0 ? { tone: 'bad' as const } : {}) },
        ]}
      />,
    );
    step.connections.forEach((use, j) => {
      const cy = y + j * 52;
      parts.push(
        <Arrow key={`ca${i}-${j}`} x1={CHAIN_X + CHAIN_W} y1={y + 22} x2={SIDE_X - 2} y2={cy + 22} />,
      );
      parts.push(
        <Box
          key={`c${i}-${j}`}
          testId={`connection-${step.name}-${use.id}`}
          x={SIDE_X}
          y={cy}
          w={SIDE_W}
          h={44}
          tone="connection"
          lines={[
            { text: `connection ${use.id}`, strong: true },
            { text: connectionText(use), ...(use.failures > 0 ? { tone: 'bad' as const } : {}) },
          ]}
        />,
      );
    });
    bottom = y + h;
    y = bottom + GAP;
  }
  if (picture.outsideSteps.length > 0) {
    parts.push(
      <Box
        key="outside"
        testId="outside-steps"
        x={SIDE_X}
        y={y - GAP + 4}
        w={SIDE_W}
        h={26 + picture.outsideSteps.length * LINE}
        tone="connection"
        lines={[
          { text: 'Called outside a step', strong: true },
          ...picture.outsideSteps.map((use) => ({ text: `${use.id}: ${connectionText(use)}` })),
        ]}
      />,
    );
    y += 26 + picture.outsideSteps.length * LINE;
  }
  for (const [i, child] of picture.children.entries()) {
    parts.push(
      <Arrow
        key={`ka${i}`}
        x1={CHAIN_X + CHAIN_W / 2}
        y1={bottom}
        x2={CHAIN_X + CHAIN_W / 2}
        y2={y - 2}
        dashed
      />,
    );
    parts.push(
      <Box
        key={`k${i}`}
        testId={`child-${child.integrationId}`}
        x={CHAIN_X}
        y={y}
        w={CHAIN_W}
        h={48}
        tone="child"
        dashed
        lines={[
          {
            text: `${childVerb(picture, child)} ${child.integrationId} (${child.mode ?? 'no longer defined'})`,
            strong: true,
          },
          { text: childCounts(child) },
        ]}
      />,
    );
    bottom = y + 48;
    y = bottom + GAP;
  }
  const height = y - GAP + 16;
  return (
    <svg
      class="picture"
      viewBox={`0 0 ${WIDTH} ${height}`}
      width={WIDTH}
      height={height}
      role="img"
      aria-labelledby="picture-title picture-desc"
    >
      <title id="picture-title">{`${picture.integrationId} as a picture`}</title>
      <desc id="picture-desc">{describePicture(picture)}</desc>
      <defs>
        <marker
          id="pic-head"
          viewBox="0 0 10 10"
          refX="9"
          refY="5"
          markerWidth="7"
          markerHeight="7"
          orient="auto"
        >
          <path d="M0,0 L10,5 L0,10 z" class="pic-head" />
        </marker>
      </defs>
      {parts}
    </svg>
  );
}
