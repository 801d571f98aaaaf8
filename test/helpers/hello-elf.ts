// The smallest static program for a FROM scratch image: an x86-64 Linux ELF executable
// that writes a message to stdout and exits 0, assembled here byte by byte (no compiler
// on the test machine needed). One PT_LOAD segment maps the whole file at 0x400000.

const BASE = 0x400000;
const EHDR = 64;
const PHDR = 56;

export function helloElf(message: string): Buffer {
  const msg = Buffer.from(message);
  const code = Buffer.from([
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (write)
    0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1 (stdout)
    0x48, 0x8d, 0x35, 0x10, 0x00, 0x00, 0x00, // lea rsi, [rip+16] (the message, after the code)
    0xba, ...u32(msg.length), // mov edx, length
    0x0f, 0x05, // syscall
    0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
    0x31, 0xff, // xor edi, edi
    0x0f, 0x05, // syscall
  ]);
  const size = EHDR + PHDR + code.length + msg.length;
  const ehdr = Buffer.concat([
    Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), // ELF64, little endian, SysV
    u16(2), u16(0x3e), Buffer.from(u32(1)), // ET_EXEC, x86-64, version 1
    u64(BASE + EHDR + PHDR), u64(EHDR), u64(0), // entry, program headers, no section headers
    Buffer.from(u32(0)), u16(EHDR), u16(PHDR), u16(1), u16(0), u16(0), u16(0),
  ]);
  const phdr = Buffer.concat([
    Buffer.from(u32(1)), Buffer.from(u32(5)), // PT_LOAD, read + execute
    u64(0), u64(BASE), u64(BASE), u64(size), u64(size), u64(0x1000),
  ]);
  return Buffer.concat([ehdr, phdr, code, msg]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

function u32(n: number): number[] {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return [...b];
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
