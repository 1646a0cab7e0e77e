import { useEffect, useState } from 'preact/hooks';

/** Where the dashboard is: the part of the URL after #, as a path and its query. */
export interface Route {
  path: string[];
  params: URLSearchParams;
}

function current(): Route {
  const [path = '', search = ''] = location.hash.replace(/^#/, '').split('?');
  return { path: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(search) };
}

/** Hash routing: every page has a URL to reload or share, and the server serves one index.html. */
export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = () => setRoute(current());
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}

export function href(path: string, params: Record<string, string | number | undefined> = {}): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') search.set(k, String(v));
  const text = search.toString();
  return `#${path}${text ? `?${text}` : ''}`;
}

export function navigate(path: string, params: Record<string, string | number | undefined> = {}): void {
  location.hash = href(path, params);
}

export const nodeHref = (hostname: string) => href(`/nodes/${encodeURIComponent(hostname)}`);
export const taskHref = (id: string) => href(`/tasks/${id}`);
export const deploymentHref = (name: string) => href(`/deployments/${encodeURIComponent(name)}`);
