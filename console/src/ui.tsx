import type { ComponentChildren } from 'preact';
import type { InstanceStatus } from './api';

export function StatusBadge({ status }: { status: InstanceStatus | string }) {
  return <span class={`badge badge-${status}`}>{status}</span>;
}

export function Problem({ message }: { message: string | null }) {
  if (!message) return null;
  return (
    <p class="problem" role="alert">
      {message}
    </p>
  );
}

export function Loading({ when, children }: { when: unknown; children: () => ComponentChildren }) {
  if (when === null || when === undefined) return <p aria-busy="true">Loading…</p>;
  return <>{children()}</>;
}

export function Json({ value, label }: { value: unknown; label: string }) {
  return (
    <figure class="json">
      <figcaption>{label}</figcaption>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a long value scrolls: it must take focus to be scrolled by keyboard */}
      <pre tabIndex={0}>{value === undefined || value === null ? '—' : JSON.stringify(value, null, 2)}</pre>
    </figure>
  );
}

export function Page({
  title,
  children,
  actions,
}: {
  title: string;
  children: ComponentChildren;
  actions?: ComponentChildren;
}) {
  return (
    <section aria-labelledby="page-title">
      <header class="page-header">
        <h1 id="page-title" tabIndex={-1}>
          {title}
        </h1>
        {actions}
      </header>
      {children}
    </section>
  );
}

/**
 * A region that scrolls sideways when its content is wider than the screen (a table on a phone).
 * It takes focus, so that a keyboard user can scroll it too; its label names it when focused.
 */
export function Scroller(props: { label: string; class?: string; children: ComponentChildren }) {
  return (
    <section
      class={props.class ?? 'table-scroll'}
      aria-label={props.label}
      // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must take focus to be scrolled by keyboard
      tabIndex={0}
    >
      {props.children}
    </section>
  );
}
