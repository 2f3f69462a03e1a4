import { mount } from 'svelte';
import App from './App.svelte';
import { connectWorker } from './lib/engine';
import './styles.css';

mount(App, { target: document.getElementById('app')!, props: { connect: connectWorker } });
