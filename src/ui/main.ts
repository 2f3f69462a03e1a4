import { mount } from 'svelte';
import App from './App.svelte';
import { connectWorker } from './lib/engine';
import './styles.css';

mount(App, { target: document.getElementById('app')!, props: { connect: connectWorker } });

// The app shell works offline after a first visit (src/ui/service-worker.ts; built apps only).
declare const __ALLOY_SERVICE_WORKER__: string | undefined;
if (typeof __ALLOY_SERVICE_WORKER__ === 'string' && 'serviceWorker' in navigator) {
  navigator.serviceWorker.register(new URL(__ALLOY_SERVICE_WORKER__, document.baseURI), { scope: './' }).catch((error: unknown) => {
    console.warn(`Alloy works online only: the service worker did not register (${(error as Error).message})`);
  });
}
