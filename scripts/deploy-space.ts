/**
 * Publishes the built app (dist/app) to a Hugging Face static Space through `@huggingface/hub`:
 *
 *   npm run deploy -- --space OWNER/NAME [--hub URL] [--private] [--token-file FILE] [--dir dist/app]
 *
 * The token comes from HF_TOKEN or --token-file (never a prompt, so it runs in CI); it needs write
 * access to OWNER. The Space is created when missing (sdk: static) and its files are replaced in
 * one commit: the build, plus a README.md whose front matter makes it a static Space with
 * "Sign in with Hugging Face" (hf_oauth and the scopes the app asks for); files of an earlier
 * build that are gone are deleted, so stale hashed assets do not pile up.
 */
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { commit, createRepo, HubApiError, listFiles, type CommitOperation } from '@huggingface/hub';
import { hubUrlProblem } from '../src/hub/hub-url';
import { ALLOY_OAUTH_SCOPES } from '../src/hub/oauth-scopes';
import { filesUnder } from './files-under';

export interface DeployOptions {
  /** `owner/name` of the Space. */
  readonly space: string;
  readonly hubUrl: string;
  readonly accessToken: string;
  readonly private: boolean;
  /** The built app. */
  readonly dir: string;
  readonly log?: (line: string) => void;
}

const SPACE_RE = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
/** Files the Hub keeps in every repo: never deleted as "stale". */
const KEPT = new Set(['.gitattributes', 'README.md']);

/** The Space's README: front matter (docs: spaces-config-reference) and a short description. */
export function spaceReadme(space: string): string {
  return [
    '---',
    'title: Alloy',
    'emoji: ⚗️',
    'colorFrom: indigo',
    'colorTo: purple',
    'sdk: static',
    'app_file: index.html',
    'pinned: false',
    'license: lgpl-3.0',
    'short_description: mergekit-compatible LLM merging in your browser',
    'hf_oauth: true',
    'hf_oauth_scopes:',
    ...ALLOY_OAUTH_SCOPES.map((scope) => `  - ${scope}`),
    '---',
    '',
    '# Alloy',
    '',
    'Merge language models in your browser, mergekit-compatible: models are read from the Hub by',
    'HTTP range requests, merged on WebGPU (or the CPU) in a Web Worker, and pushed to your account.',
    'Nothing is installed and nothing leaves your browser except requests to the Hub.',
    '',
    `"Sign in with Hugging Face" asks for: ${ALLOY_OAUTH_SCOPES.join(', ')} (read private and gated`,
    'models, create the output repo and push to it).',
    '',
    `Published with \`npm run deploy -- --space ${space}\`.`,
    '',
  ].join('\n');
}

export async function deploySpace(options: DeployOptions): Promise<{ url: string; commitOid: string | undefined; files: string[] }> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  if (!SPACE_RE.test(options.space)) throw new Error(`--space must be OWNER/NAME (e.g. my-name/alloy), not "${options.space.slice(0, 80)}"`);
  const problem = hubUrlProblem(options.hubUrl);
  if (problem) throw new Error(`--hub ${options.hubUrl.slice(0, 80)}: ${problem}`);
  const dir = resolve(options.dir);
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory() || !statSync(join(dir, 'index.html'), { throwIfNoEntry: false })) {
    throw new Error(`${dir} holds no built app (no index.html): run "npm run build" first, or pass --dir`);
  }
  const repo = { type: 'space' as const, name: options.space };
  const credentials = { accessToken: options.accessToken, hubUrl: options.hubUrl };

  try {
    await createRepo({ repo, sdk: 'static', private: options.private, ...credentials });
    log(`created the Space ${options.space}${options.private ? ' (private)' : ''}`);
  } catch (error) {
    if (!(error instanceof HubApiError && error.statusCode === 409)) throw explain(error, options, 'create');
    log(`the Space ${options.space} exists: replacing its files`);
  }

  const built = filesUnder(dir).filter((path) => path !== 'README.md');
  const existing: string[] = [];
  try {
    for await (const entry of listFiles({ repo, recursive: true, ...credentials })) if (entry.type === 'file') existing.push(entry.path);
  } catch (error) {
    throw explain(error, options, 'list the files of');
  }
  const keep = new Set([...built, ...KEPT]);
  const operations: CommitOperation[] = [
    ...built.map((path): CommitOperation => ({ operation: 'addOrUpdate', path, content: new Blob([readFileSync(join(dir, path))]) })),
    { operation: 'addOrUpdate', path: 'README.md', content: new Blob([spaceReadme(options.space)]) },
    ...existing.filter((path) => !keep.has(path)).map((path): CommitOperation => ({ operation: 'delete', path })),
  ];
  log(`uploading ${built.length} files of ${dir}${operations.length > built.length + 1 ? ` and deleting ${operations.length - built.length - 1} stale ones` : ''}…`);
  let output;
  try {
    output = await commit({ repo, operations, title: 'Deploy Alloy', ...credentials });
  } catch (error) {
    throw explain(error, options, 'upload to');
  }
  const url = `${options.hubUrl.replace(/\/+$/, '')}/spaces/${options.space}`;
  log(`done: ${url}`);
  return { url, commitOid: output?.commit.oid, files: [...built, 'README.md'] };
}

function explain(error: unknown, options: DeployOptions, action: string): Error {
  if (error instanceof HubApiError) {
    const hint =
      error.statusCode === 401
        ? ': the token was refused; create one with write access at https://huggingface.co/settings/tokens'
        : error.statusCode === 403
          ? `: this token may not write to ${options.space.split('/')[0]} (it needs write access to that user or organization)`
          : '';
    return new Error(`could not ${action} the Space ${options.space} on ${options.hubUrl} (${error.statusCode})${hint}: ${error.message.slice(0, 300)}`, {
      cause: error,
    });
  }
  return error instanceof Error ? error : new Error(String(error));
}

export interface DeployArgs {
  readonly space: string;
  readonly hubUrl: string;
  readonly private: boolean;
  readonly dir: string;
  readonly tokenFile?: string;
}

const USAGE = 'usage: npm run deploy -- --space OWNER/NAME [--hub URL] [--private] [--token-file FILE] [--dir dist/app]';

export function parseDeployArgs(args: readonly string[]): DeployArgs {
  let space: string | undefined;
  let hubUrl = 'https://huggingface.co';
  let isPrivate = false;
  let dir = 'dist/app';
  let tokenFile: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = (): string => {
      const next = args[++i];
      if (next === undefined || next.startsWith('--')) throw new Error(`${arg} needs a value\n${USAGE}`);
      return next;
    };
    if (arg === '--space') space = value();
    else if (arg === '--hub') hubUrl = value();
    else if (arg === '--private') isPrivate = true;
    else if (arg === '--dir') dir = value();
    else if (arg === '--token-file') tokenFile = value();
    else throw new Error(`unknown argument ${arg.slice(0, 60)}\n${USAGE}`);
  }
  if (!space) throw new Error(`--space is required\n${USAGE}`);
  return { space, hubUrl, private: isPrivate, dir, ...(tokenFile ? { tokenFile } : {}) };
}

export function readToken(args: DeployArgs, env: NodeJS.ProcessEnv): string {
  const token = (args.tokenFile ? readFileSync(args.tokenFile, 'utf8') : (env.HF_TOKEN ?? '')).trim();
  if (!token) throw new Error('no token: set HF_TOKEN or pass --token-file FILE (a token with write access, from https://huggingface.co/settings/tokens)');
  if (!token.startsWith('hf_')) throw new Error(`the token ${args.tokenFile ? `in ${args.tokenFile} ` : 'in HF_TOKEN '}is not a Hugging Face token (they start with "hf_")`);
  return token;
}

export async function main(args: readonly string[]): Promise<void> {
  try {
    const parsed = parseDeployArgs(args);
    await deploySpace({ space: parsed.space, hubUrl: parsed.hubUrl, private: parsed.private, dir: parsed.dir, accessToken: readToken(parsed, process.env) });
  } catch (error) {
    process.stderr.write(`deploy: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}
