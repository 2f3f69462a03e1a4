/**
 * The dev/test entry (mock.html): the app on the mock engine, for developing and screenshotting the
 * UI without a Hub, a GPU or model weights. `?mock=slow|fast,cpu,quota` tunes the mock.
 */
import { mount } from 'svelte';
import App from '../App.svelte';
import '../styles.css';
import { createMockEngine, mockOptionsFrom } from './mock-engine';

mount(App, {
  target: document.getElementById('app')!,
  props: {
    connect: async () => ({
      api: createMockEngine(mockOptionsFrom(location.search)),
      kind: 'mock' as const,
      reason: 'mock.html, the page for developing the UI',
    }),
  },
});
