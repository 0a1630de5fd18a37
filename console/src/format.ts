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
