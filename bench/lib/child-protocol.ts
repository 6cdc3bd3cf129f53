/** Messages between the bench and the server (or baseline) process it runs, over IPC. */
export type ChildRequest = { readonly type: 'gc' } | { readonly type: 'close' };

export type ChildReply =
  | { readonly type: 'ready'; readonly url: string; readonly adminTokenFile?: string }
  | { readonly type: 'gc:done' }
  | { readonly type: 'closed' };
