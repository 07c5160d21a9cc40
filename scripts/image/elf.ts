// Just enough ELF to know which shared libraries a binary loads (its DT_NEEDED
// entries), so the image carries exactly those. x86-64 only: ELF64, little-endian.
import { closeSync, openSync, readSync } from 'node:fs'

function read(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len)
  readSync(fd, b, 0, len, pos)
  return b
}

/** The sonames a file needs, or undefined when it is not an ELF64 object (scripts, data). */
export function needed(path: string): string[] | undefined {
  const fd = openSync(path, 'r')
  try {
    const h = read(fd, 0, 64)
    if (h.readUInt32BE(0) !== 0x7f454c46) return undefined // \x7fELF
    if (h[4] !== 2 || h[5] !== 1) throw new Error(`${path}: not a 64-bit little-endian ELF`)
    const phoff = Number(h.readBigUInt64LE(0x20))
    const phentsize = h.readUInt16LE(0x36)
    const phnum = h.readUInt16LE(0x38)
    const ph = read(fd, phoff, phentsize * phnum)
    const loads: { vaddr: number; offset: number; size: number }[] = []
    let dyn: { offset: number; size: number } | undefined
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize
      const type = ph.readUInt32LE(o)
      const offset = Number(ph.readBigUInt64LE(o + 8))
      const vaddr = Number(ph.readBigUInt64LE(o + 16))
      const size = Number(ph.readBigUInt64LE(o + 32))
      if (type === 1) loads.push({ vaddr, offset, size }) // PT_LOAD
      if (type === 2) dyn = { offset, size } // PT_DYNAMIC
    }
    if (!dyn) return [] // static
    const d = read(fd, dyn.offset, dyn.size)
    const wants: number[] = []
    let strtab = 0
    let strsz = 0
    for (let o = 0; o + 16 <= d.length; o += 16) {
      const tag = Number(d.readBigInt64LE(o))
      const val = Number(d.readBigUInt64LE(o + 8))
      if (tag === 0) break // DT_NULL
      if (tag === 1) wants.push(val) // DT_NEEDED: offset into the string table
      if (tag === 5) strtab = val // DT_STRTAB: a virtual address
      if (tag === 10) strsz = val
    }
    const seg = loads.find((l) => strtab >= l.vaddr && strtab < l.vaddr + l.size)
    if (!seg) throw new Error(`${path}: string table outside every loaded segment`)
    const strs = read(fd, strtab - seg.vaddr + seg.offset, strsz)
    return wants.map((w) => strs.toString('latin1', w, strs.indexOf(0, w)))
  } finally {
    closeSync(fd)
  }
}
