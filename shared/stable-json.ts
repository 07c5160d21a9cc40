// JSON with object keys sorted, so objects equal in content give equal text
// whatever the order of their keys. Values JSON drops (undefined, functions)
// are dropped the same way: in objects the key goes, in arrays they are null.
export function stableJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null'
  if (Array.isArray(v)) {
    let s = '['
    for (let i = 0; i < v.length; i++) s += (i ? ',' : '') + (dropped(v[i]) ? 'null' : stableJson(v[i]))
    return s + ']'
  }
  const o = v as Record<string, unknown>
  let s = '{'
  for (const k of Object.keys(o).sort()) {
    if (dropped(o[k])) continue
    s += (s.length > 1 ? ',' : '') + JSON.stringify(k) + ':' + stableJson(o[k])
  }
  return s + '}'
}

const dropped = (x: unknown): boolean => x === undefined || typeof x === 'function' || typeof x === 'symbol'
