// JSON with object keys sorted, so objects equal in content give equal text
// whatever the order of their keys. JSON.stringify does the writing (values it
// drops are dropped the same way), so the text comes out as one flat string:
// callers keep these strings (the store one per object), and a string grown
// piece by piece stays a tree of pieces in memory.
export function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    typeof val === 'object' && val !== null && !Array.isArray(val) ? Object.fromEntries(Object.keys(val).sort().map((k) => [k, (val as Record<string, unknown>)[k]])) : val,
  ) ?? 'null'
}
