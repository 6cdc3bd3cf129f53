/** Messages between the bench and the server (or baseline) process it runs, over IPC. */
export type ChildRequest = { readonly type: 'gc' } | { readonly type: 'elu' } | { readonly type: 'close' };

export type ChildReply =
  | { readonly type: 'ready'; readonly url: string; readonly adminTokenFile?: string }
  | { readonly type: 'gc:done' }
  /**
   * `performance.eventLoopUtilization()` of the child so far: ms its event loop was busy and idle;
   * and the longest stall of its event loop since the last `elu`, in ms.
   */
  | { readonly type: 'elu:done'; readonly active: number; readonly idle: number; readonly maxDelayMs: number }
  | { readonly type: 'closed' };
