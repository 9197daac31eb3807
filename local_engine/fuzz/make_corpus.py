#!/usr/bin/env python3
"""Writes small valid GGUF seed files for the gguf_fuzz libFuzzer target (standard library only).

    python3 local_engine/fuzz/make_corpus.py CORPUS_DIR
"""
import struct
import sys
from pathlib import Path

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
          U64: "<Q", I64: "<q", F64: "<d"}
# ggml type id -> (elements per block, bytes per block)
TENSOR = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 8: (32, 34), 12: (256, 144), 14: (256, 210)}


def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def value(vtype, v):
    if vtype == STR:
        return s(v)
    if vtype == ARR:
        elem, items = v
        out = struct.pack("<IQ", elem, len(items))
        return out + b"".join(value(elem, x) for x in items)
    return struct.pack(SCALAR[vtype], v)


def gguf(kvs, tensors, version=3, align=32):
    out = struct.pack("<IIQQ", 0x46554747, version, len(tensors), len(kvs))
    for key, vtype, v in kvs:
        out += s(key) + struct.pack("<I", vtype) + value(vtype, v)
    data, offsets = b"", []
    for name, ttype, ne in tensors:
        elems, nbytes = TENSOR[ttype]
        rows = 1
        for d in ne[1:]:
            rows *= d
        size = ne[0] // elems * nbytes * rows
        offsets.append(len(data))
        data += bytes((i * 37 + 11) & 0xFF for i in range(size))
        data += b"\0" * (-len(data) % align)
    for (name, ttype, ne), off in zip(tensors, offsets):
        out += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<q", d) for d in ne)
        out += struct.pack("<IQ", ttype, off)
    out += b"\0" * (-len(out) % align)
    return out + data


def main():
    corpus = Path(sys.argv[1])
    corpus.mkdir(parents=True, exist_ok=True)
    every_value = [("v.u8", U8, 200), ("v.i8", I8, -3), ("v.u16", U16, 60000), ("v.i16", I16, -300),
                   ("v.u32", U32, 7), ("v.i32", I32, -7), ("v.f32", F32, 0.5), ("v.bool", BOOL, True),
                   ("v.str", STR, "llama"), ("v.u64", U64, 1 << 40), ("v.i64", I64, -1), ("v.f64", F64, 1e-6),
                   ("a.str", ARR, (STR, ["<s>", "\u2581a", ""])), ("a.i32", ARR, (I32, [1, -2, 3])),
                   ("a.f32", ARR, (F32, [0.0, -1.5]))]
    seeds = {
        "values.gguf": gguf(every_value, []),
        "tensors.gguf": gguf([("general.architecture", STR, "llama")],
                             [("f32", 0, [4, 2]), ("f16", 1, [3]), ("bf16", 30, [2, 1, 2]), ("q4_0", 2, [32]),
                              ("q8_0", 8, [64, 1]), ("q4_k", 12, [256]), ("q6_k", 14, [256])]),
        "align64.gguf": gguf([("general.alignment", U32, 64)], [("w", 0, [5]), ("v", 1, [7, 3])], align=64),
        "v2.gguf": gguf([("general.name", STR, "v2")], [("w", 0, [1])], version=2),
    }
    for name, data in seeds.items():
        (corpus / name).write_bytes(data)


if __name__ == "__main__":
    main()
