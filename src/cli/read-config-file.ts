import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, YAML_LIMITS, type ConfigIssue } from '../config';
import { UsageError } from './args';

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

/**
 * The text of the config at `configPath` (resolved against `cwd`) for a command that runs it: a
 * file that cannot be read is a usage error, one refused by its size a config error.
 */
export async function readConfigText(configPath: string, cwd: string): Promise<string> {
  const file = path.resolve(cwd, configPath);
  let read: Awaited<ReturnType<typeof readConfigFile>>;
  try {
    read = await readConfigFile(file);
  } catch {
    throw new UsageError(`cannot read config file ${file}`);
  }
  if ('issue' in read) throw new ConfigError([read.issue], configPath);
  return read.text;
}
