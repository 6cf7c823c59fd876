// Intentions (Consul's /ui/<dc>/intentions): the list in precedence order (as the API sends it),
// create / edit / delete through connect/intentions/exact, and "can A reach B?" answered by
// connect/intentions/check.
import { useState } from 'preact/hooks';
import { ApiError, api, useLive } from '../api.ts';
import { Empty, ErrorBox, FilterBox, Loading, html } from '../components.ts';
import { href } from '../router.ts';

interface Intention { ID?: string; SourceName: string; DestinationName: string; Action?: string; Permissions?: unknown[]; Precedence: number; Description?: string }

const exact = (src: string, dst: string): string => `/v1/connect/intentions/exact?source=${encodeURIComponent(src)}&destination=${encodeURIComponent(dst)}`;

export function IntentionsPage({ dc }: { dc: string }) {
  const live = useLive<Intention[] | null>('/v1/connect/intentions');
  const [editing, setEditing] = useState<Intention | null>(null);
  const [filter, setFilter] = useState('');
  const [error, setError] = useState<Error | undefined>();
  const all = live.data ?? [];
  const q = filter.trim().toLowerCase();
  const rows = q === '' ? all : all.filter((i) => i.SourceName.toLowerCase().includes(q) || i.DestinationName.toLowerCase().includes(q));
  const del = async (i: Intention): Promise<void> => {
    if (!confirm(`Delete the intention ${i.SourceName} → ${i.DestinationName}?`)) return;
    try { await api('DELETE', exact(i.SourceName, i.DestinationName)); setError(undefined); } catch (e) { setError(e as Error); }
  };
  return html`<section aria-labelledby="h-int">
    <header class="page-head"><h1 id="h-int">Intentions <span class="count">${all.length}</span></h1>
      <${FilterBox} label="Filter by source or destination" value=${filter} onInput=${setFilter} /></header>
    <div class="two-col">
      <${IntentionForm} key=${editing ? `${editing.SourceName}>${editing.DestinationName}` : 'new'} editing=${editing} onDone=${() => setEditing(null)} />
      <${CheckForm} />
    </div>
    <${ErrorBox} error=${live.error} />
    <${ErrorBox} error=${error} what="Delete failed" />
    ${live.loading ? html`<${Loading} />` : all.length === 0 && !live.error ? html`<${Empty}>No intentions yet: with none, the default (allow in -dev, or acl default policy) decides. Create one above.<//>` : null}
    ${rows.length > 0 ? html`<table class="list" data-testid="intentions"><caption class="sr-only">Intentions, highest precedence first</caption>
      <thead><tr><th scope="col">Source</th><th scope="col"></th><th scope="col">Destination</th><th scope="col">Action</th><th scope="col">Precedence</th><th scope="col">Description</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${rows.map((i) => html`<tr key=${`${i.SourceName}>${i.DestinationName}`} data-intention=${`${i.SourceName}>${i.DestinationName}`}>
        <td>${i.SourceName === '*' ? html`<em>* (any)</em>` : html`<a href=${href(dc, 'services', i.SourceName)}>${i.SourceName}</a>`}</td><td aria-hidden="true">→</td>
        <td>${i.DestinationName === '*' ? html`<em>* (any)</em>` : html`<a href=${href(dc, 'services', i.DestinationName)}>${i.DestinationName}</a>`}</td>
        <td><span class=${`badge action-${i.Action ?? 'l7'}`}>${i.Action ?? 'app-aware (L7)'}</span></td>
        <td>${i.Precedence}</td><td>${i.Description ?? ''}</td>
        <td class="row-actions"><button type="button" class="link" onClick=${() => setEditing(i)}>Edit</button> <button type="button" class="link danger" onClick=${() => del(i)}>Delete</button></td>
      </tr>`)}</tbody></table>` : null}
  </section>`;
}

function IntentionForm({ editing, onDone }: { editing: Intention | null; onDone: () => void }) {
  const [src, setSrc] = useState(editing?.SourceName ?? '');
  const [dst, setDst] = useState(editing?.DestinationName ?? '');
  const [action, setAction] = useState(editing?.Action ?? 'allow');
  const [desc, setDesc] = useState(editing?.Description ?? '');
  const [error, setError] = useState<Error | undefined>();
  const [ok, setOk] = useState('');
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(undefined); setOk('');
    try {
      await api('PUT', exact(src.trim(), dst.trim()), { SourceType: 'consul', Action: action, Description: desc });
      setOk(`Saved: ${src.trim()} → ${dst.trim()} ${action}.`);
      if (editing) onDone();
      else { setSrc(''); setDst(''); setDesc(''); }
    } catch (err) { setError(err as ApiError); }
  };
  return html`<form class="card" onSubmit=${submit} aria-labelledby="h-intform">
    <h2 id="h-intform">${editing ? 'Edit intention' : 'Create an intention'}</h2>
    <label>Source service<input name="source" required value=${src} readOnly=${!!editing} onInput=${(e: Event) => setSrc((e.target as HTMLInputElement).value)} placeholder="web or *" /></label>
    <label>Destination service<input name="destination" required value=${dst} readOnly=${!!editing} onInput=${(e: Event) => setDst((e.target as HTMLInputElement).value)} placeholder="api or *" /></label>
    <fieldset class="inline"><legend>Action</legend>
      <label><input type="radio" name="action" value="allow" checked=${action === 'allow'} onChange=${() => setAction('allow')} /> allow</label>
      <label><input type="radio" name="action" value="deny" checked=${action === 'deny'} onChange=${() => setAction('deny')} /> deny</label></fieldset>
    <label>Description<input name="description" value=${desc} onInput=${(e: Event) => setDesc((e.target as HTMLInputElement).value)} /></label>
    <${ErrorBox} error=${error} what="The API refused it" />
    ${ok ? html`<p class="ok" role="status">${ok}</p>` : null}
    <div class="actions"><button type="submit">Save</button>${editing ? html`<button type="button" onClick=${onDone}>Cancel</button>` : null}</div>
  </form>`;
}

function CheckForm() {
  const [src, setSrc] = useState('');
  const [dst, setDst] = useState('');
  const [answer, setAnswer] = useState<string>('');
  const [allowed, setAllowed] = useState<boolean | null>(null);
  const [error, setError] = useState<Error | undefined>();
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(undefined); setAllowed(null);
    try {
      const r = await api<{ Allowed: boolean }>('GET', `/v1/connect/intentions/check?source=${encodeURIComponent(src.trim())}&destination=${encodeURIComponent(dst.trim())}`);
      setAllowed(r.data.Allowed);
      setAnswer(`${src.trim()} ${r.data.Allowed ? 'may' : 'may not'} connect to ${dst.trim()}.`);
    } catch (err) { setError(err as ApiError); }
  };
  return html`<form class="card" onSubmit=${submit} aria-labelledby="h-check">
    <h2 id="h-check">Can A reach B?</h2>
    <label>Source (A)<input name="check-source" required value=${src} onInput=${(e: Event) => setSrc((e.target as HTMLInputElement).value)} /></label>
    <label>Destination (B)<input name="check-destination" required value=${dst} onInput=${(e: Event) => setDst((e.target as HTMLInputElement).value)} /></label>
    <div class="actions"><button type="submit">Check</button></div>
    <${ErrorBox} error=${error} />
    ${allowed !== null ? html`<p class=${allowed ? 'ok' : 'denied'} role="status" data-check-answer=${allowed ? 'allowed' : 'denied'}>${allowed ? '✔' : '✖'} ${answer}</p>` : null}
  </form>`;
}
