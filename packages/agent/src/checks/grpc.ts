// gRPC checks, as Consul's CheckGRPC: a call to grpc.health.v1.Health/Check on "host:port", or on
// "host:port/service" to ask about one service. SERVING is passing ("gRPC check <target>: success");
// any other serving status, or a failed call, is critical. Each run dials a fresh channel and closes
// it, as Consul does; the timeout is the call's deadline. The two tiny health messages are encoded
// by hand rather than loaded from a .proto.
import * as grpc from '@grpc/grpc-js';
import { truncateOutput } from './output.ts';
import { critical, passing, type Probe, type ProbeResult } from './probe.ts';

const HEALTH_CHECK_METHOD = '/grpc.health.v1.Health/Check';
const SERVING = 1;
const SERVING_STATUS_NAMES = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
/** grpc-go's names of the status codes, by number, for "rpc error: code = ... desc = ...". */
const GO_CODE_NAMES = [
  'OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists',
  'PermissionDenied', 'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented',
  'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated',
];

export interface GrpcProbeOptions {
  /** "host:port" or "host:port/service". */
  target: string;
  useTls: boolean;
  tlsSkipVerify: boolean;
  tlsServerName: string;
  timeoutMs: number;
  outputMaxBytes: number;
}

/** HealthCheckRequest { string service = 1; } */
export function encodeHealthCheckRequest(service: string): Buffer {
  if (service === '') return Buffer.alloc(0);
  const bytes = Buffer.from(service);
  return Buffer.concat([Buffer.from([0x0a]), encodeVarint(bytes.length), bytes]);
}

/** HealthCheckResponse { ServingStatus status = 1; } → the status number (0 when absent). */
export function decodeHealthCheckResponse(buf: Buffer): number {
  let status = 0;
  let pos = 0;
  const varint = (): number => {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= buf.length) throw new Error('truncated HealthCheckResponse');
      const b = buf[pos++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
  };
  while (pos < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    switch (key & 7) {
      case 0: {
        const v = varint();
        if (field === 1) status = v;
        break;
      }
      case 1: pos += 8; break;
      case 2: {
        const len = varint(); // Before `pos +=`, which would read pos ahead of the varint.
        pos += len;
        break;
      }
      case 5: pos += 4; break;
      default: throw new Error(`HealthCheckResponse: unsupported wire type ${key & 7}`);
    }
  }
  return status;
}

function encodeVarint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

export function grpcProbe(o: GrpcProbeOptions): Probe {
  const slash = o.target.indexOf('/');
  const server = slash < 0 ? o.target : o.target.slice(0, slash);
  const request = encodeHealthCheckRequest(slash < 0 ? '' : o.target.slice(slash + 1));
  const options: grpc.ChannelOptions = {};
  if (o.useTls && o.tlsServerName) options['grpc.ssl_target_name_override'] = o.tlsServerName;
  const credentials = (): grpc.ChannelCredentials => o.useTls
    ? grpc.credentials.createSsl(null, null, null, o.tlsSkipVerify ? { rejectUnauthorized: false, checkServerIdentity: () => undefined } : {})
    : grpc.credentials.createInsecure();

  return (signal) => new Promise<ProbeResult>((resolve) => {
    const client = new grpc.Client(server, credentials(), options);
    const call = client.makeUnaryRequest<Buffer, number>(
      HEALTH_CHECK_METHOD, (b) => b, decodeHealthCheckResponse, request, new grpc.Metadata(),
      { deadline: Date.now() + o.timeoutMs },
      (err, status) => {
        signal.removeEventListener('abort', onAbort);
        client.close();
        if (err) {
          resolve(critical(truncateOutput(`rpc error: code = ${GO_CODE_NAMES[err.code] ?? err.code} desc = ${err.details}`, o.outputMaxBytes)));
        } else if (status !== SERVING) {
          resolve(critical(`gRPC ${o.target} serving status: ${SERVING_STATUS_NAMES[status ?? 0] ?? status}`));
        } else {
          resolve(passing(`gRPC check ${o.target}: success`));
        }
      },
    );
    // Cancelling ends the call with CANCELLED, which resolves through the callback above.
    const onAbort = (): void => call.cancel();
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}
