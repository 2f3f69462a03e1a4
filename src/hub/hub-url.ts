/**
 * Which Hub URLs Alloy talks to. A token is a password: it must never cross plain HTTP to
 * another machine, and it belongs to the one Hub origin it was entered for.
 */

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** `scheme://host[:port]` of a Hub URL, or undefined when it is not a URL. */
export function hubOrigin(hubUrl: string): string | undefined {
  try {
    return new URL(hubUrl).origin;
  } catch {
    return undefined;
  }
}

/** True for localhost, 127.0.0.1 and [::1] (a test hub or a mirror on this machine). */
export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname.toLowerCase());
}

/**
 * Why Alloy refuses a Hub URL, or undefined when it accepts it: https anywhere, plain http only on
 * this machine (anything else would send tokens and downloads readable and alterable on the way).
 */
export function hubUrlProblem(hubUrl: string): string | undefined {
  let url: URL;
  try {
    url = new URL(hubUrl.trim());
  } catch {
    return 'The Hub URL must be an https address such as https://huggingface.co.';
  }
  if (url.username || url.password) return 'The Hub URL must not contain a user name or password.';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') {
    if (isLoopbackHost(url.hostname)) return undefined;
    return `Plain http:// is refused for a Hub on another machine (${truncate(url.host)}): use https://. Only localhost, 127.0.0.1 and [::1] may use http://.`;
  }
  return 'The Hub URL must be an https address such as https://huggingface.co.';
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}
