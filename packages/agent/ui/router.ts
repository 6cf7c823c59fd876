// Client-side routing over Consul's URL shapes, under the agent's content path:
//   <base><dc>/services[/<name>[/routing]]  <base><dc>/nodes[/<name>]  <base><dc>/kv/<path>
//   <base><dc>/intentions  <base><dc>/topology
// Links are plain <a href>; a click on one is handled here (pushState) so the app does not reload.
import { useEffect, useState } from 'preact/hooks';
import { settings } from './api.ts';

export interface Route { dc: string; section: string; rest: string[]; raw: string }

export function parse(pathname: string): Route {
  const base = settings.contentPath;
  const tail = pathname.startsWith(base) ? pathname.slice(base.length) : pathname.replace(/^\//, '');
  const parts = tail.split('/').map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
  const dc = parts[0] || settings.datacenter;
  const section = parts[1] || '';
  // KV paths keep their trailing slash (a folder): rest is the remainder as written.
  return { dc, section, rest: parts.slice(2), raw: parts.slice(2).join('/') };
}

/** A URL of this UI: href('services', 'web') → /ui/dc1/services/web. */
export function href(dc: string, section: string, ...rest: string[]): string {
  return `${settings.contentPath}${encodeURIComponent(dc)}/${section}${rest.length ? '/' + rest.map((r) => r.split('/').map(encodeURIComponent).join('/')).join('/') : ''}`;
}

export function navigate(url: string, replace = false): void {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  window.dispatchEvent(new Event('trellis:navigate'));
  window.scrollTo(0, 0);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.pathname));
  useEffect(() => {
    const on = (): void => setRoute(parse(location.pathname));
    window.addEventListener('popstate', on);
    window.addEventListener('trellis:navigate', on);
    // Same-origin links inside the UI are routed here instead of reloading the page.
    const click = (e: MouseEvent): void => {
      if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      const a = (e.target as Element | null)?.closest?.('a');
      if (!a || a.target || a.hasAttribute('download')) return;
      const url = new URL(a.href, location.href);
      if (url.origin !== location.origin || !url.pathname.startsWith(settings.contentPath)) return;
      e.preventDefault();
      navigate(url.pathname + url.search);
    };
    document.addEventListener('click', click);
    return () => {
      window.removeEventListener('popstate', on);
      window.removeEventListener('trellis:navigate', on);
      document.removeEventListener('click', click);
    };
  }, []);
  return route;
}
