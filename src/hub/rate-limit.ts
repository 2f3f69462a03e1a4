/**
 * The Hub's rate limits (docs/browser.md §2.7; per 5 minutes, about 3,000 `resolve` requests
 * for an anonymous IP and 5,000 signed in): a 429 says how long to wait in `Retry-After`, in
 * seconds or as an HTTP date. Browsers let JavaScript read it only when the Hub lists it in
 * `Access-Control-Expose-Headers`; without it the caller waits {@link DEFAULT_RATE_LIMIT_WAIT_MS}.
 */

/** The wait when a 429 says nothing readable: half the Hub's 5-minute window would be too long to show as a pause. */
export const DEFAULT_RATE_LIMIT_WAIT_MS = 30_000;

/** Waits longer than this are not sat through: the user is told to come back instead. */
export const MAX_RATE_LIMIT_WAIT_MS = 10 * 60_000;

/** Milliseconds a `Retry-After` value asks for; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/[a-z]/i.test(text)) return undefined;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** "30 s", "2 min": how long a wait is, for messages. */
export function formatWait(ms: number): string {
  const seconds = Math.ceil(ms / 1000);
  return seconds < 120 ? `${seconds} s` : `${Math.ceil(seconds / 60)} min`;
}
