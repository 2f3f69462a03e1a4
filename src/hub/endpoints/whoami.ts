import { whoAmI } from '@huggingface/hub';
import { HubError, tokenSettingsUrl, type HubCallContext } from '../errors';
import type { HubIdentity } from '../types';
import { callHub, type HubContext } from './context';

/** Who `token` belongs to and whether it can write (throws a HubError for a bad token). */
export async function checkToken(ctx: HubContext, token: string | undefined): Promise<HubIdentity> {
  if (!token) {
    throw new HubError(`no access token: create one with write access at ${tokenSettingsUrl(ctx.hubUrl)}`, 'bad-token');
  }
  const context: HubCallContext = { hubUrl: ctx.hubUrl, action: 'check the token with', repo: 'the Hub', authenticated: true };
  const me = await callHub(ctx, context, undefined, (fetch) => whoAmI({ accessToken: token, hubUrl: ctx.hubUrl, fetch }));
  const role = me.auth?.accessToken?.role;
  return {
    name: me.name,
    ...('fullname' in me && me.fullname ? { fullname: me.fullname } : {}),
    type: me.type,
    orgs: 'orgs' in me && Array.isArray(me.orgs) ? me.orgs.map((o) => o.name) : [],
    ...(role ? { tokenRole: role } : {}),
    canWrite: role === 'read' ? false : role === 'write' ? true : null,
  };
}
