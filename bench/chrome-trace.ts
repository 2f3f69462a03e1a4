/**
 * A Chrome trace of a stretch of a bench run (`npm run bench:browser -- --trace`), for
 * chrome://tracing or ui.perfetto.dev: every process's and thread's tasks, V8 execution and the
 * page's and workers' `performance.mark`/`measure`. Tracing costs the merge some time of its own,
 * so a traced run's seconds are not comparable with an untraced one's.
 */
import { writeFileSync } from 'node:fs';
import type { CDPSession, Page } from 'playwright-core';

const CATEGORIES = ['toplevel', 'devtools.timeline', 'v8.execute', 'blink.user_timing', 'disabled-by-default-devtools.timeline', 'disabled-by-default-v8.cpu_profiler'];

export interface ChromeTrace {
  /** Stops tracing and writes the trace (JSON) to `path`. */
  stop(path: string): Promise<void>;
}

export async function startChromeTrace(page: Page): Promise<ChromeTrace> {
  const cdp: CDPSession = await page.context().newCDPSession(page);
  await cdp.send('Tracing.start', { transferMode: 'ReturnAsStream', traceConfig: { includedCategories: CATEGORIES } });
  return {
    async stop(path) {
      const complete = new Promise<string>((resolve) => cdp.once('Tracing.tracingComplete', (event) => resolve(event.stream!)));
      await cdp.send('Tracing.end');
      const stream = await complete;
      const pieces: Buffer[] = [];
      for (;;) {
        const chunk = await cdp.send('IO.read', { handle: stream, size: 1 << 20 });
        pieces.push(Buffer.from(chunk.data, chunk.base64Encoded ? 'base64' : 'utf8'));
        if (chunk.eof) break;
      }
      await cdp.send('IO.close', { handle: stream });
      writeFileSync(path, Buffer.concat(pieces));
      await cdp.detach();
    },
  };
}
