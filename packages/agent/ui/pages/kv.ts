// Key/Value (Consul's /ui/<dc>/kv/<path>): a path ending in "/" is a folder (its keys and
// subfolders, from ?keys&separator=/), anything else a key (view and edit). Writes use
// check-and-set: an edit is sent with ?cas=<the ModifyIndex it was loaded at>, so an edit over a
// newer version is refused (the API answers false) and says so; a create uses ?cas=0.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, decodeValue, useLive } from '../api.ts';
import { Empty, ErrorBox, Loading, html } from '../components.ts';
import { href, navigate } from '../router.ts';

interface DirEntry { Key: string; Value: string | null; Flags: number; ModifyIndex: number; CreateIndex: number; Session?: string }

const kvPath = (key: string): string => `/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}`;

function Crumbs({ dc, path }: { dc: string; path: string }) {
  const parts = path.split('/').filter((p) => p !== '');
  let acc = '';
  return html`<nav class="crumbs" aria-label="Breadcrumb"><a href=${href(dc, 'kv') + '/'}>Key / Value</a>${parts.map((p, i) => {
    acc += p + (i < parts.length - 1 || path.endsWith('/') ? '/' : '');
    return html` / <a href=${`${href(dc, 'kv')}/${acc.split('/').map(encodeURIComponent).join('/')}`}>${p}</a>`;
  })}</nav>`;
}

export function KvPage({ dc, path }: { dc: string; path: string }) {
  if (path === '' || path.endsWith('/')) return html`<${KvFolder} dc=${dc} folder=${path} />`;
  if (path === 'create' || path.endsWith('/create')) return html`<${KvEditor} dc=${dc} folder=${path.slice(0, -'create'.length)} />`;
  return html`<${KvKey} dc=${dc} keyName=${path} />`;
}

function KvFolder({ dc, folder }: { dc: string; folder: string }) {
  const live = useLive<string[]>(`${kvPath(folder)}?keys&separator=/`);
  const [error, setError] = useState<Error | undefined>();
  // A folder with no keys answers 404: that is an empty folder, not an error.
  const notFound = live.error?.status === 404;
  const keys = (notFound ? [] : live.data ?? []).filter((k) => k !== folder);
  const del = async (key: string): Promise<void> => {
    if (!confirm(`Delete ${key}${key.endsWith('/') ? ' and every key under it' : ''}?`)) return;
    try {
      await api('DELETE', `${kvPath(key)}${key.endsWith('/') ? '?recurse' : ''}`);
      setError(undefined);
    } catch (e) { setError(e as Error); }
  };
  return html`<section aria-labelledby="h-kv">
    <${Crumbs} dc=${dc} path=${folder} />
    <header class="page-head"><h1 id="h-kv">Key / Value</h1>
      <a class="button" href=${`${href(dc, 'kv')}/${folder.split('/').map(encodeURIComponent).join('/')}create`}>Create</a></header>
    ${notFound ? null : html`<${ErrorBox} error=${live.error} />`}
    <${ErrorBox} error=${error} what="Delete failed" />
    ${live.loading ? html`<${Loading} />` : keys.length === 0 ? html`<${Empty}>${folder === '' ? 'No keys yet: create one with the Create button or trellis kv put <key> <value>.' : `No keys under ${folder}.`}<//>` : html`
      <ul class="kv-list" data-testid="kv-list">${keys.map((k) => html`<li key=${k}>
        <a href=${`${href(dc, 'kv')}/${k.split('/').map(encodeURIComponent).join('/')}`}>${k.endsWith('/') ? '📁 ' : ''}${k.slice(folder.length)}</a>
        <button type="button" class="link danger" onClick=${() => del(k)} aria-label=${`Delete ${k}`}>Delete</button></li>`)}</ul>`}
  </section>`;
}

function KvKey({ dc, keyName }: { dc: string; keyName: string }) {
  const live = useLive<DirEntry[]>(kvPath(keyName));
  const entry = live.data?.[0];
  return html`<section aria-labelledby="h-kv">
    <${Crumbs} dc=${dc} path=${keyName} />
    ${live.error?.status === 404 ? html`<${Empty}>There is no key ${keyName}. <a href=${`${href(dc, 'kv')}/${keyName.split('/').map(encodeURIComponent).join('/')}`.replace(/[^/]*$/, 'create')}>Create it</a>.<//>` : html`<${ErrorBox} error=${live.error} />`}
    ${live.loading ? html`<${Loading} />` : entry ? html`<${KvEditor} dc=${dc} folder="" entry=${entry} />` : null}
  </section>`;
}

/** The create / edit form. `entry`: edit that key (CAS on its ModifyIndex); otherwise create under `folder`. */
function KvEditor({ dc, folder, entry }: { dc: string; folder: string; entry?: DirEntry }) {
  const [key, setKey] = useState(entry ? entry.Key : folder);
  const [value, setValue] = useState(entry ? decodeValue(entry.Value) : '');
  // The version this form edits: it does not follow the live value, so a newer write is noticed.
  const [base, setBase] = useState(entry?.ModifyIndex ?? 0);
  const [error, setError] = useState<Error | undefined>();
  const [saved, setSaved] = useState('');
  const newer = entry && entry.ModifyIndex !== base;
  useEffect(() => { setSaved(''); }, [value, key]);
  const save = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      const cas = entry ? base : 0;
      const r = await api<boolean>('PUT', `${kvPath(key)}?cas=${cas}`, value);
      if (r.data !== true) {
        setError(new Error(entry
          ? `Not saved: ${key} was changed since you opened it (it is now at index ${entry.ModifyIndex}, you edited index ${base}). Reload the newer value, then edit again.`
          : `Not created: ${key} already exists. Open it to edit it.`));
        return;
      }
      if (entry) {
        setSaved('Saved.');
        setBase(-1); // until the live value arrives with the new index
      } else {
        navigate(`${href(dc, 'kv')}/${key.split('/').map(encodeURIComponent).join('/')}`);
      }
    } catch (err) { setError(err as ApiError); }
  };
  // After our own save, follow the value we wrote.
  useEffect(() => { if (entry && base === -1) setBase(entry.ModifyIndex); }, [entry?.ModifyIndex, base]);
  const del = async (): Promise<void> => {
    if (!entry || !confirm(`Delete ${entry.Key}?`)) return;
    try {
      const r = await api<boolean>('DELETE', `${kvPath(entry.Key)}?cas=${base}`);
      if (r.data !== true) { setError(new Error(`Not deleted: ${entry.Key} was changed since you opened it. Reload, then delete again.`)); return; }
      navigate(`${href(dc, 'kv')}/${entry.Key.replace(/[^/]*$/, '').split('/').map(encodeURIComponent).join('/')}`);
    } catch (err) { setError(err as ApiError); }
  };
  return html`<form class="card kv-form" onSubmit=${save}>
    <h1>${entry ? entry.Key : 'Create a key or folder'}</h1>
    ${entry ? null : html`<label>Key (end with / for a folder)<input name="key" required value=${key} onInput=${(e: Event) => setKey((e.target as HTMLInputElement).value)} /></label>`}
    <label>Value<textarea name="value" rows="8" value=${value} onInput=${(e: Event) => setValue((e.target as HTMLTextAreaElement).value)} /></label>
    ${entry ? html`<p class="muted">Index ${entry.ModifyIndex}${entry.Flags ? ` · flags ${entry.Flags}` : ''}${entry.Session ? ` · locked by session ${entry.Session}` : ''}</p>` : null}
    ${newer && base !== -1 ? html`<div class="warning" role="status">This key changed since you opened it. <button type="button" class="link" onClick=${() => { setBase(entry!.ModifyIndex); setValue(decodeValue(entry!.Value)); setError(undefined); }}>Load the newer value</button></div>` : null}
    <${ErrorBox} error=${error} what=${error instanceof ApiError ? 'The API refused it' : 'Not saved'} />
    ${saved ? html`<p class="ok" role="status">${saved}</p>` : null}
    <div class="actions"><button type="submit">${entry ? 'Save' : 'Create'}</button>
      ${entry ? html`<button type="button" class="danger" onClick=${del}>Delete</button>` : null}</div>
  </form>`;
}
