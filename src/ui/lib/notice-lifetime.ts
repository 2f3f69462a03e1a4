/**
 * How long a notice stays up. Errors stay until dismissed. Any other notice speaks of the moment it
 * was shown (a config loaded or cleared with Undo, the form rewriting the YAML): once the user moves
 * to another step or edits the config, it is about a state that is gone, and its Undo would throw
 * the newer edits away, so it goes.
 */

/** Where the user was: the step shown and the YAML text. */
export interface NoticeMoment {
  readonly step: string;
  readonly yaml: string;
}

export function noticeOutlived(kind: 'info' | 'warning' | 'error', shown: NoticeMoment, now: NoticeMoment): boolean {
  return kind !== 'error' && (shown.step !== now.step || shown.yaml !== now.yaml);
}
