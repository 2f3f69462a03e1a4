/// <reference lib="webworker" />
/**
 * The app's service worker: keeps the app shell (the page, its scripts, workers, styles, the
 * manifest and the bundled demo models) in a cache, so that after a first visit the app opens and
 * merges local folders with no network. Only the files listed at build time (`__ALLOY_SHELL__`,
 * written by vite.config.ts's shell plugin) are served from the cache; everything else — the Hub,
 * its CDN, anything not in the list — goes to the network untouched. A new build has a new cache
 * name; the old cache is dropped when the new worker activates.
 */
export {};
declare const self: ServiceWorkerGlobalScope;
declare const __ALLOY_SHELL__: { readonly version: string; readonly files: readonly string[] };

const CACHE = `alloy-shell-${__ALLOY_SHELL__.version}`;
/** Shell files as absolute URLs, resolved against the worker's own location (any sub-path). */
const SHELL = new Set(__ALLOY_SHELL__.files.map((f) => new URL(f, self.location.href).href));
const INDEX = new URL('./', self.location.href).href;

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll([...SHELL]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('alloy-shell-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  url.search = '';
  url.hash = '';
  // The page itself (with or without ?hub=… or #config=…) is index.html.
  const key = url.href === INDEX ? new URL('index.html', INDEX).href : url.href;
  if (!SHELL.has(key)) return;
  const cached = (): Promise<Response> => caches.match(key, { cacheName: CACHE }).then((r) => r ?? Response.error());
  // Hashed build assets never change: the cache first. The page, manifest and demo models: the
  // network first, so a deployed update shows at once, and the cache when offline.
  if (key.includes('/assets/')) event.respondWith(cached().then((r) => (r.type === 'error' ? fetch(request) : r)));
  else event.respondWith(fetch(request).catch(cached));
});
