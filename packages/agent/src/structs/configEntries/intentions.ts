// Intention precedence as Consul computes it (agent/structs/config_entry_intentions.go,
// computeIntentionPrecedence): the more exact the destination and the source, the higher.
// Destination exact parts (namespace, name): 2 → max 9, 1 → 6, 0 → 3; then max − (2 − exact source
// parts). Trellis has one namespace ("default", never a wildcard), so a name is 2 exact parts unless
// it is `*` (1). Pure; the intentions work reads it too.

export const WILDCARD = '*';

/** Exact parts of (namespace, name); the namespace is always the exact "default" here. */
export function intentionCountExact(name: string, namespace = 'default'): number {
  if (namespace === WILDCARD) return 0;
  return name === WILDCARD ? 1 : 2;
}

/** Consul's precedence of a source within a destination's intentions. */
export function intentionPrecedence(destination: string, source: string, destinationNamespace = 'default', sourceNamespace = 'default'): number {
  const max = [3, 6, 9][intentionCountExact(destination, destinationNamespace)]!;
  return max - (2 - intentionCountExact(source, sourceNamespace));
}
