/**
 * The server's Unix socket in its data directory, named by what it speaks: `server.sock` for TLS
 * (the default), `server-http.sock` for plain HTTP (`serve --insecure-http`). The name is how a
 * local client knows which to speak, read in the same look-up that finds the socket. A file beside
 * the socket saying so could be stale while the socket is not, or the other way round (a server
 * killed between writing the two); whereas the server removes both names at every start (it holds
 * the data directory's lock, so any socket there is stale), so that at most one is there, and
 * a stale one refuses connections whatever its name. The CA file (`tls/ca.pem`) said nothing: it
 * stays from any earlier run with TLS.
 */
export const SOCKET_FILES = { tls: 'server.sock', plain: 'server-http.sock' } as const;
