// The bits of gRPC-over-HTTP/2 the proxy needs to answer a gRPC caller itself (doc/PROTOCOL-HTTP2.md
// in grpc/grpc; Envoy's Grpc::Utility): a gRPC request is recognised by its content-type, and a
// local answer to one is a "trailers-only" response: HTTP 200 whose only HEADERS frame carries
// grpc-status and grpc-message, because gRPC clients read the status there, not from :status.
// Pure.

/** gRPC status codes (grpc/grpc doc/statuscodes.md). */
export const GRPC_STATUS = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
} as const;

/** application/grpc, application/grpc+proto, application/grpc-web…: all gRPC content types start so. */
export function isGrpcContentType(ct: unknown): boolean {
  const v = Array.isArray(ct) ? ct[0] : ct;
  return typeof v === 'string' && /^application\/grpc(?:$|[+;-])/i.test(v.trim());
}

/** Envoy's Grpc::Utility::httpToGrpcStatus: the status a gRPC caller sees for a proxy-made HTTP answer. */
export function httpToGrpcStatus(status: number): number {
  switch (status) {
    case 400: return GRPC_STATUS.INTERNAL;
    case 401: return GRPC_STATUS.UNAUTHENTICATED;
    case 403: return GRPC_STATUS.PERMISSION_DENIED;
    case 404: return GRPC_STATUS.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return GRPC_STATUS.UNAVAILABLE;
    default: return GRPC_STATUS.UNKNOWN;
  }
}

/** grpc-message is percent-encoded: bytes outside printable ASCII, and '%' itself. */
export function encodeGrpcMessage(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The headers of a trailers-only gRPC answer the proxy makes for what would be `httpStatus` over plain HTTP. */
export function grpcLocalReply(httpStatus: number, message: string): Record<string, string | number> {
  return { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(httpToGrpcStatus(httpStatus)), 'grpc-message': encodeGrpcMessage(message) };
}
