import { readFile, stat } from 'node:fs/promises';
import { YAML_LIMITS, type ConfigIssue } from '../config';

/**
 * A config file's text, or the issue that refuses it: a file far past the size a config may have
 * is refused from its size, without reading gigabytes into memory first (the parse refuses
 * anything over YAML_LIMITS.maxChars characters anyway).
 */
export async function readConfigFile(file: string): Promise<{ text: string } | { issue: ConfigIssue }> {
  const info = await stat(file);
  // UTF-8 takes at most 4 bytes per character (JavaScript counts astral ones as 2).
  if (info.isFile() && info.size > 4 * YAML_LIMITS.maxChars) {
    return {
      issue: {
        path: '',
        message: `the file is ${info.size} bytes long, more than a config may have (${YAML_LIMITS.maxChars} characters): is it the right file?`,
        severity: 'error',
        line: 1,
        column: 1,
      },
    };
  }
  return { text: await readFile(file, 'utf8') };
}
