import { IJob } from './tokens';

/** Create an element with classes and optional text. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** "1h02m" / "3m05s" / "12s". */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || seconds === undefined) {
    return '—';
  }
  const s = Math.floor(seconds);
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (hours) {
    return `${hours}h${String(minutes).padStart(2, '0')}m`;
  }
  return minutes ? `${minutes}m${String(s % 60).padStart(2, '0')}s` : `${s % 60}s`;
}

export function formatTime(epoch: number | null): string {
  return epoch ? new Date(epoch * 1000).toLocaleString() : '—';
}

/** A status badge, coloured by theme variables. */
export function badge(job: IJob): HTMLSpanElement {
  const node = h('span', `jp-JobsBadge jp-JobsBadge-${job.status}`, job.status);
  node.title = job.message || job.status;
  return node;
}

/** Seconds the job has been running (or queued, before it starts). */
export function elapsed(job: IJob): number | null {
  return job.durations.running ?? job.durations.queued;
}
