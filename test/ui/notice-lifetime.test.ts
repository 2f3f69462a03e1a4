import { describe, expect, it } from 'vitest';
import { noticeOutlived } from '../../src/ui/lib/notice-lifetime';

describe('noticeOutlived', () => {
  const shown = { step: 'models', yaml: '' };

  it('keeps a notice while the user stays on its step and leaves the YAML alone', () => {
    for (const kind of ['info', 'warning', 'error'] as const) expect(noticeOutlived(kind, shown, { step: 'models', yaml: '' })).toBe(false);
  });

  it('drops an info or warning (an Undo among them) once the step changes or the YAML is edited', () => {
    expect(noticeOutlived('info', shown, { step: 'method', yaml: '' })).toBe(true);
    expect(noticeOutlived('info', shown, { step: 'models', yaml: 'merge_method: linear\n' })).toBe(true);
    expect(noticeOutlived('warning', shown, { step: 'plan', yaml: '' })).toBe(true);
    expect(noticeOutlived('warning', shown, { step: 'models', yaml: 'x' })).toBe(true);
  });

  it('keeps errors until they are dismissed', () => {
    expect(noticeOutlived('error', shown, { step: 'run', yaml: 'models: []\n' })).toBe(false);
  });
});
