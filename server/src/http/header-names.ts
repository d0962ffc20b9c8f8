// Which header fields Kapsel accepts and which it keeps for itself. One place, because endpoints
// (kept header lists, the signature header), the Ingest RPC (caller-set headers), the gateway
// (headers kept from senders) and the configuration must agree — and because a stored header that
// the delivery client refuses to send makes an event that can never be delivered.

/** An RFC 9110 token in lower case, at most 100 characters. */
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]{1,100}$/;

/** Headers a stored event may not carry to its destination: the framing and hop-by-hop fields
 * (RFC 9110 §7.6.1, and `expect`, which asks for an interim answer the sender cannot wait for),
 * the content type (sent separately), and our Standard Webhooks signature headers. undici refuses
 * to send several of these at all (transfer-encoding, keep-alive, upgrade, expect). */
const RESERVED = /^(host|content-length|content-type|transfer-encoding|connection|keep-alive|te|trailer|upgrade|expect|http2-settings|proxy-.*|webhook-.*|user-agent)$/;

/** RFC 9110 §5.5 field-value: visible ASCII and obs-text (the Latin-1 range, sent as single
 * octets), with spaces and tabs between them but not around them. No other control character and
 * nothing beyond U+00FF, which cannot be written as one octet. */
const FIELD_VALUE = /^(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?$/;

export function isHeaderName(name: string): boolean {
  return HEADER_NAME.test(name);
}

export function isReservedHeader(name: string): boolean {
  return RESERVED.test(name);
}

export function isFieldValue(value: string): boolean {
  return FIELD_VALUE.test(value);
}

/** Why a header (name in lower case) may not be stored with an event and forwarded, or undefined
 * when it may. The reason never echoes the value. */
export function headerProblem(name: string, value: string): string | undefined {
  if (!isHeaderName(name)) return `header name ${JSON.stringify(name.slice(0, 100))} is not an RFC 9110 token`;
  if (isReservedHeader(name)) return `header ${name} is set by Kapsel or the connection and may not be set`;
  if (!isFieldValue(value)) {
    return `header ${name} has a value that is not an RFC 9110 field value (control characters, characters beyond U+00FF, or leading or trailing whitespace)`;
  }
  return undefined;
}

/** Why a header name may not be in a kept-headers list (an endpoint's or KAPSEL_KEPT_HEADERS), or
 * undefined. */
export function keptNameProblem(name: string): string | undefined {
  if (!isHeaderName(name)) return `${JSON.stringify(name.slice(0, 100))} is not a valid header name`;
  if (isReservedHeader(name)) return `${name} is set by Kapsel or the connection and cannot be kept`;
  return undefined;
}
