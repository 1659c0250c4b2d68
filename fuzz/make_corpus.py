#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/fuzz_api.c into fuzz/corpus/ (one small file per seed).

Each seed is a short program in the harness's input format (see the decoder in
fuzz/fuzz_api.c: an opcode byte per operation followed by its argument bytes; missing bytes
read as zero, which always decodes to the plain valid choice). Rerun after changing the
decoder:  python3 fuzz/make_corpus.py
"""
import os
import struct

OP_PRE, OP_POST, OP_POST_PRE, OP_HEAD, OP_WS, OP_CREATE, OP_DESTROY, OP_BACKEND, OP_STR, OP_ENV = range(10)
T_CODE = {1: 0, 2: 1, 3: 2, 4: 3, 0: 4}
# Roles per op: True where the tensor is optional (norm_weight).
ROLES = {
    OP_PRE: [False, False, False, False, True, False, False, False],
    OP_POST: [False] * 5,
    OP_POST_PRE: [False] * 7 + [True] + [False] * 4,
    OP_HEAD: [False] * 5,
}
U64_TABLE_1 = 1  # index of the value 1 in kU64


def tensor(optional, var=0, mut=None, fill=0, seed=0, present=True):
    """Bytes of one tensor: [present] var mut fill seed [mutation mask and args]."""
    out = b""
    if optional:
        out += bytes([0 if present else 1])
    if mut is None:
        return out + bytes([var, 0, fill, seed])
    mask, args = mut
    return out + bytes([var, 0xC0, fill, seed]) + struct.pack("<H", mask) + args


def op(kind, T=2, H=16, ctx=0, params=0, tensors=None, wsel=0, stream=0):
    b = bytes([kind, ctx, T_CODE[T], (H - 1) % 64])
    if kind != OP_POST:
        b += bytes([params])
    if kind in (OP_PRE, OP_POST_PRE):
        b += bytes([0])  # weights struct present
    roles = ROLES[kind]
    tensors = tensors or {}
    for i, optional in enumerate(roles):
        b += tensors.get(i, tensor(optional))
    return b + bytes([wsel, stream])


def seeds():
    s = {}
    s["pre_T2_H16"] = op(OP_PRE, 2, 16)
    s["pre_T4_H64_variants"] = op(OP_PRE, 4, 64, params=0x02,
                                  tensors={i: tensor(i == 4, var=0x1F | (i << 5) & 0x60, fill=i % 3, seed=i)
                                           for i in range(8)})
    s["pre_T1_H1_no_norm"] = op(OP_PRE, 1, 1, tensors={4: tensor(True, present=False)})
    s["pre_T0"] = op(OP_PRE, 0, 33)
    s["pre_specials"] = op(OP_PRE, 3, 24, tensors={i: tensor(i == 4, fill=2, seed=7 * i) for i in range(8)})
    s["pre_zero_residual"] = op(OP_PRE, 2, 40, tensors={0: tensor(False, fill=3)})
    s["post_T3_H8"] = op(OP_POST, 3, 8)
    s["post_rawbits"] = op(OP_POST, 4, 64, tensors={i: tensor(False, fill=1, seed=i) for i in range(5)})
    s["post_pre_T2_H32"] = op(OP_POST_PRE, 2, 32)
    s["post_pre_T4_H64_postmult1"] = op(OP_POST_PRE, 4, 64, params=0x01,
                                        tensors={2: tensor(False, var=0x10), 9: tensor(False, var=0x10)})
    s["head_T1_H7_S3"] = op(OP_HEAD, 1, 7, tensors={1: tensor(False, var=0x40)})
    s["head_T4_H64"] = op(OP_HEAD, 4, 64)
    # A layer loop on a created context in slot 0 (ctx selector 1).
    s["layer_loop_slot0"] = (bytes([OP_CREATE, 0, 0]) + op(OP_PRE, 2, 16, ctx=1) +
                             op(OP_POST_PRE, 2, 16, ctx=1) + op(OP_POST, 2, 16, ctx=1) +
                             op(OP_HEAD, 2, 16, ctx=1) + bytes([OP_DESTROY, 0]))
    s["use_after_destroy"] = (bytes([OP_CREATE, 0, 1]) + bytes([OP_DESTROY, 1]) +
                              op(OP_POST, 1, 4, ctx=7 + 16 * 1) + bytes([OP_DESTROY, 0x31]))
    s["workspace_sizes"] = b"".join(bytes([OP_WS, 0, 0, k, 0, 0, 3, 0, 17, 0]) for k in range(4))
    s["create_variants"] = (bytes([OP_CREATE, 0x01, 0x03, 2]) + bytes([OP_CREATE, 0xC0, 0]) +
                            bytes([OP_CREATE, 0xC6, 2, 0]) + bytes([OP_CREATE, 0xFF, 0, 0, 0]) +
                            bytes([OP_BACKEND, 3, 0]) + bytes([OP_BACKEND, 0, 3]))
    s["strings_env"] = bytes([OP_STR, 0, OP_STR, 12, OP_STR, 200, 0xff, 0xff, 0xff, 0x7f,
                              OP_ENV, 1, OP_CREATE, 0, 0, OP_ENV, 0])
    # Mutated descriptors (mask bits: 1 NULL, 2 ndim, 4 shape, 8 strides, 16 dtype, 32 device,
    # 64 byte_offset, 128 data NULL, 256 small data, 512 shape NULL, 1024 alias, 2048 two dims).
    i64 = lambda k: bytes([k])  # index into kI64
    s["residual_overflow_shape"] = op(OP_PRE, 2, 16, tensors={
        0: tensor(False, mut=(4 | 2048, bytes([0]) + i64(33) + bytes([2]) + i64(33)))})
    s["negative_dim"] = op(OP_POST, 2, 16, tensors={0: tensor(False, mut=(4, bytes([1]) + i64(16)))})
    s["ndim_out_of_range"] = op(OP_HEAD, 2, 16, tensors={3: tensor(False, mut=(2, bytes([14])))})
    s["odd_byte_offset"] = op(OP_POST, 2, 16, tensors={4: tensor(False, mut=(64, bytes([U64_TABLE_1])))})
    s["alias_output_on_input"] = op(OP_POST, 2, 16, tensors={4: tensor(False, mut=(1024, bytes([1, 0])))})
    s["bad_strides"] = op(OP_PRE, 2, 16, tensors={1: tensor(False, mut=(8, bytes([1]) + i64(4)))})
    s["bad_dtype_device"] = op(OP_POST_PRE, 2, 16, tensors={
        5: tensor(False, mut=(16, bytes([2, 64, 0]))), 11: tensor(False, mut=(32, bytes([1, 0])))})
    s["huge_offset_T0"] = op(OP_POST, 0, 16, tensors={0: tensor(False, mut=(64, bytes([15])))})
    s["params_nan_eps"] = op(OP_PRE, 2, 16, params=0xA0)[:5] + bytes([4, 2]) + op(OP_PRE, 2, 16)[5:]
    return s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "corpus")
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        os.remove(os.path.join(out, name))
    for name, data in sorted(seeds().items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds())} seeds to {out}")


if __name__ == "__main__":
    main()
