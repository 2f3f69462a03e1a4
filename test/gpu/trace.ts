import { writeSync } from 'node:fs';
export const trace = (m: string): void => { writeSync(2, `[trace] ${m}\n`); };
