// Which header names Kapsel accepts and which it keeps for itself. One place, because endpoints
// (kept header lists, the signature header), the Ingest RPC (caller-set headers) and the gateway
// (headers kept from senders) must agree.

/** An RFC 9110 token in lower case, at most 100 characters. */
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]{1,100}$/;

/** Headers a stored event may not carry to its destination: the transport's own, the content
 * type (sent separately), and our Standard Webhooks signature headers. */
const RESERVED = /^(host|content-length|content-type|transfer-encoding|connection|keep-alive|te|trailer|upgrade|proxy-.*|webhook-.*|user-agent)$/;

export function isHeaderName(name: string): boolean {
  return HEADER_NAME.test(name);
}

export function isReservedHeader(name: string): boolean {
  return RESERVED.test(name);
}
