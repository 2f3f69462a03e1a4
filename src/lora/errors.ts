/** A LoRA adapter that cannot be used as given; the message names the adapter and the file. */
export class LoraAdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoraAdapterError';
  }
}

/** Untrusted text (a key from a file) shortened and quoted for a message. */
export function quote(text: string, max = 120): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(cut);
}
