/**
 * What the service relies on that its libraries do not promise: the texts of
 * errors they raise without a code of their own. Each is pinned, for the
 * library version it was read from, by test/library-behaviour.test.ts, which
 * makes the library raise it for real: an upgrade that changes one fails that
 * test instead of a user (docs/dependencies.md, "Library behaviour we rely on").
 */

/** The versions the texts below were read from (and the contract test pins). */
export const READ_FROM = {
  "@connectrpc/connect": "2.1.2",
  pg: "8.23.1",
  "pg-pool": "3.14.0",
} as const;

/**
 * What connect-es says, with code INTERNAL, when the bytes of a request
 * message cannot be decoded (protocol/serialization.js,
 * createBinarySerialization): this prefix, then protobuf-es's problem.
 */
const CONNECT_PARSE_BINARY = "parse binary: ";

/**
 * What connect-es says, with code INTERNAL, when a message is flagged as
 * compressed in a request that names no encoding (protocol/envelope.js,
 * envelopeDecompress).
 */
const CONNECT_COMPRESSED_WITHOUT_ENCODING =
  "received compressed envelope, but do not know how to decompress";

/**
 * A request message connect-es could not read, told by its INTERNAL error's
 * text: the message's bytes did not decode (`problem` is protobuf-es's own
 * words), or it was flagged as compressed with no encoding named. Both are
 * the client's mistake; a server-side fault is never worded like this.
 */
export type ConnectDecodeFailure =
  | { readonly kind: "binary"; readonly problem: string }
  | { readonly kind: "compressed_without_encoding" };

/** The decode failure an INTERNAL error's raw message tells of, if it tells of one. */
export function connectDecodeFailure(rawMessage: string): ConnectDecodeFailure | undefined {
  if (rawMessage.startsWith(CONNECT_PARSE_BINARY)) {
    return { kind: "binary", problem: rawMessage.slice(CONNECT_PARSE_BINARY.length) };
  }
  if (rawMessage === CONNECT_COMPRESSED_WITHOUT_ENCODING) {
    return { kind: "compressed_without_encoding" };
  }
  return undefined;
}

/**
 * The pg driver's (and its pool's) own connection failures, which carry no
 * SQLSTATE or socket code: a server that closed the connection ("Connection
 * terminated unexpectedly", pg's client.js), a pool whose connect timed out
 * ("timeout exceeded when trying to connect", pg-pool), a client that saw a
 * connection error before ("Client has encountered a connection error and
 * is not queryable") and a query past its `query_timeout` ("Query read
 * timeout").
 */
const PG_CONNECTION_FAILURE =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout)/;

/** Whether a pg error's message tells of a lost or failed connection. */
export function pgConnectionFailure(message: string): boolean {
  return PG_CONNECTION_FAILURE.test(message);
}
