// Shapes the CA's HTTP endpoints answer (Consul's structs.IssuedCert and IndexedCARoots).
import type { CARoot } from '../state/types.ts';

/** Consul's structs.IssuedCert. From the sign endpoint PrivateKeyPEM is empty: the agent that made the
 *  CSR holds the key; the agent's leaf endpoint fills it in. */
export interface IssuedCert {
  SerialNumber: string;
  CertPEM: string;
  PrivateKeyPEM: string;
  Service?: string;
  ServiceURI?: string;
  Agent?: string;
  AgentURI?: string;
  ValidAfter: string;
  ValidBefore: string;
  CreateIndex: number;
  ModifyIndex: number;
}

/** Consul's IndexedCARoots (`GET /v1/connect/ca/roots`). */
export interface CARootsResponse {
  ActiveRootID: string;
  TrustDomain: string;
  Roots: CARoot[];
}
