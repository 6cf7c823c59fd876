// SNI names of Connect targets (Consul's agent/connect/sni.go). Pure.
//   a service (or subset) target: [<subset>.]<service>.<ns>.<dc>.internal.<td>
//   a datacenter (what a mesh gateway forwards to a remote gateway): <dc>.internal.<td>
import { DEFAULT_NAMESPACE } from './spiffe.ts';

/** Subset names appear in SNI, so they are DNS labels. */
export const SUBSET_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

export function isValidSubsetName(name: string): boolean {
  return name.length <= 63 && SUBSET_NAME.test(name);
}

/** Consul's ServiceSNI. */
export function serviceSni(service: string, subset: string, datacenter: string, trustDomain: string, namespace = DEFAULT_NAMESPACE): string {
  const name = `${service}.${namespace}.${datacenter}.internal.${trustDomain}`;
  return subset === '' ? name : `${subset}.${name}`;
}

/** Consul's DatacenterSNI. */
export function datacenterSni(datacenter: string, trustDomain: string): string {
  return `${datacenter}.internal.${trustDomain}`;
}
