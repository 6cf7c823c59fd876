// Small pieces every page uses: the API's error text, empty states, health badges, the filter box.
import { html } from 'htm/preact';
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ApiError } from './api.ts';

export { html };

/** An API error as the API said it (status and text), never a generic "something went wrong". */
export function ErrorBox({ error, what }: { error?: ApiError | Error; what?: string }) {
  if (!error) return null;
  const status = 'status' in error && (error as ApiError).status ? ` (HTTP ${(error as ApiError).status})` : '';
  return html`<div class="error" role="alert"><strong>${what ?? 'The API answered'}${status}:</strong> <span class="error-text">${error.message}</span></div>`;
}

export function Empty({ children }: { children: ComponentChildren }) {
  return html`<div class="empty" role="status">${children}</div>`;
}

export function Loading() {
  return html`<div class="loading" role="status" aria-live="polite">Loading…</div>`;
}

export type Health = 'passing' | 'warning' | 'critical';

export function worst(statuses: string[]): Health {
  if (statuses.includes('critical')) return 'critical';
  if (statuses.includes('warning')) return 'warning';
  return 'passing';
}

export function HealthBadge({ status, label }: { status: string; label?: string }) {
  const sym = status === 'passing' ? '✔' : status === 'warning' ? '!' : status === 'critical' ? '✖' : '?';
  return html`<span class="badge health-${status}" title=${status}><span aria-hidden="true">${sym}</span> ${label ?? status}</span>`;
}

export function Tags({ tags }: { tags: string[] | null | undefined }) {
  if (!tags || tags.length === 0) return null;
  return html`<span class="tags">${tags.map((t) => html`<span class="tag">${t}</span>`)}</span>`;
}

/** The filter box; "/" anywhere focuses it (keyboard navigation). */
export function FilterBox({ value, onInput, label }: { value: string; onInput: (v: string) => void; label: string }) {
  return html`<label class="filter"><span class="sr-only">${label}</span>
    <input type="search" data-filter placeholder=${`${label} (press /)`} value=${value}
      onInput=${(e: Event) => onInput((e.target as HTMLInputElement).value)} /></label>`;
}

export function Meta({ meta }: { meta: Record<string, string> | null | undefined }) {
  const entries = Object.entries(meta ?? {});
  if (entries.length === 0) return html`<p class="muted">No metadata.</p>`;
  return html`<dl class="meta">${entries.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}

/**
 * How many rows of a long list to render: the first screenful at once, the rest in chunks on the
 * following tasks, so a page of 1,000 services shows its first rows without waiting for the last
 * (and the tab stays responsive meanwhile).
 */
export function useProgressive(total: number, first = 60, chunk = 300): number {
  const [limit, setLimit] = useState(first);
  useEffect(() => {
    if (limit >= total) return;
    const t = setTimeout(() => setLimit((l) => l + chunk), 0);
    return () => clearTimeout(t);
  }, [limit, total]);
  return Math.min(limit, total);
}
