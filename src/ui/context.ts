import { getContext, setContext } from 'svelte';
import type { AppState } from './state/app.svelte';

const KEY = Symbol('alloy-app');

export function provideApp(app: AppState): void {
  setContext(KEY, app);
}

/** The page state, from any component under App. */
export function useApp(): AppState {
  const app = getContext<AppState | undefined>(KEY);
  if (!app) throw new Error('useApp() outside <App>');
  return app;
}
