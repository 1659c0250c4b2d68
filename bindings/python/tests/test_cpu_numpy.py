"""CPU backend through numpy: results against the float64 reference of the spec, the fused
boundary against post-then-pre (bitwise), out=, T = 0, DLPack producers, and errors."""
from __future__ import annotations

import ctypes
import pickle
import threading

import numpy as np
import pytest

import mhc
import reference as ref
from conftest import BF16, DLPackOnly, Inputs
from mhc import _mhc


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint16)


def _as(dtype_kind, bits):
    """bf16 input in one of the accepted numpy flavours."""
    if dtype_kind == "uint16":
        return bits
    if BF16 is None:
        pytest.skip("ml_dtypes is not installed")
    return bits.view(BF16)


# ---- correctness against the float64 reference ------------------------------------------
@pytest.mark.parametrize("T,H", [(1, 8), (5, 64), (17, 100), (3, 257)])
@pytest.mark.parametrize("flavour", ["uint16", "ml_dtypes"])
@pytest.mark.parametrize("with_norm", [False, True])
def test_hc_pre_matches_reference(ctx, T, H, flavour, with_norm):
    d = Inputs(T, H, seed=T * 1000 + H)
    nw = _as(flavour, d.norm_weight) if with_norm else None
    post, comb, li = ctx.hc_pre(_as(flavour, d.residual), d.fn, d.scale, d.base, norm_weight=nw)
    assert post.shape == (T, 4) and post.dtype == np.float32
    assert comb.shape == (T, 4, 4) and comb.dtype == np.float32
    assert li.shape == (T, H) and li.dtype == (np.uint16 if flavour == "uint16" else BF16)
    rpost, rcomb, rli, mag = ref.hc_pre(d.residual, d.fn, d.scale, d.base,
                                        d.norm_weight if with_norm else None, magnitudes=True)
    ref.assert_mix_close(post, rpost, "post_mix")
    ref.assert_mix_close(comb, rcomb, "comb_mix")
    ref.assert_bf16_close(_bits(li), rli, what="layer_input", magnitude=mag)


@pytest.mark.parametrize("params", [
    mhc.Params(post_mult=1.0, sinkhorn_iters=5),
    mhc.Params(rms_eps=1e-3, pre_eps=0.0, sinkhorn_eps=1e-4, batch_invariant=True),
])
def test_hc_pre_params(ctx, inputs, params):
    d = inputs
    post, comb, li = ctx.hc_pre(d.residual, d.fn, d.scale, d.base, params=params)
    rpost, rcomb, rli = ref.hc_pre(d.residual, d.fn, d.scale, d.base, iters=params.sinkhorn_iters,
                                   rms_eps=params.rms_eps, pre_eps=params.pre_eps,
                                   sk_eps=params.sinkhorn_eps, post_mult=params.post_mult)
    ref.assert_mix_close(post, rpost)
    ref.assert_mix_close(comb, rcomb)
    ref.assert_bf16_close(_bits(li), rli)


@pytest.mark.parametrize("T,H", [(1, 8), (6, 64), (4, 129)])
def test_hc_post_matches_reference(ctx, T, H):
    d = Inputs(T, H, seed=7 + T)
    out = ctx.hc_post(d.x, d.residual, d.post, d.comb)
    assert out.shape == (T, 4, H) and out.dtype == np.uint16
    want, mag = ref.hc_post(d.x, d.residual, d.post, d.comb, magnitudes=True)
    ref.assert_bf16_close(out, want, what="residual", magnitude=mag)


def test_hc_post_accepts_post_mix_t_n_1(ctx, inputs):
    d = inputs
    a = ctx.hc_post(d.x, d.residual, d.post, d.comb)
    b = ctx.hc_post(d.x, d.residual, d.post.reshape(d.T, 4, 1), d.comb)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("T,H", [(1, 8), (5, 64), (3, 100)])
def test_hc_head_matches_reference(ctx, T, H):
    d = Inputs(T, H, seed=11 + H)
    out = ctx.hc_head(d.residual, d.fn_head, d.scale_head, d.base_head)
    assert out.shape == (T, H) and out.dtype == np.uint16
    want, mag = ref.hc_head(d.residual, d.fn_head, d.scale_head, d.base_head, magnitudes=True)
    ref.assert_bf16_close(out, want, what="head", magnitude=mag)


# ---- the fused boundary is post-then-pre, bit for bit ----------------------------------
@pytest.mark.parametrize("with_norm", [False, True])
@pytest.mark.parametrize("T,H", [(1, 16), (7, 64), (16, 96)])
def test_fused_equals_post_then_pre_bitwise(ctx, T, H, with_norm):
    d = Inputs(T, H, seed=T + H)
    nw = d.norm_weight if with_norm else None
    r1, p1, c1, l1 = ctx.hc_post_pre(d.x, d.residual, d.post, d.comb, d.fn2, d.scale2, d.base2,
                                     norm_weight=nw)
    r2 = ctx.hc_post(d.x, d.residual, d.post, d.comb)
    p2, c2, l2 = ctx.hc_pre(r2, d.fn2, d.scale2, d.base2, norm_weight=nw)
    for a, b in ((r1, r2), (p1, p2), (c1, c2), (l1, l2)):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert a.tobytes() == b.tobytes()


def test_fused_chain_matches_reference(ctx):
    d = Inputs(4, 32, seed=3)
    post, comb, li = ctx.hc_pre(d.residual, d.fn, d.scale, d.base)
    r, post2, comb2, li2 = ctx.hc_post_pre(d.x, d.residual, post, comb, d.fn2, d.scale2, d.base2)
    ref.assert_bf16_close(r, ref.hc_post(d.x, d.residual, post, comb))
    rp, rc, rl = ref.hc_pre(r, d.fn2, d.scale2, d.base2)
    ref.assert_mix_close(post2, rp)
    ref.assert_mix_close(comb2, rc)
    ref.assert_bf16_close(li2, rl)


def test_batch_invariant_flag(ctx):
    d = Inputs(9, 48, seed=5)
    p = mhc.Params(batch_invariant=True)
    assert p.as_tuple()[-1] == mhc.FLAG_BATCH_INVARIANT
    full = ctx.hc_pre(d.residual, d.fn, d.scale, d.base, params=p)
    one = ctx.hc_pre(d.residual[3:4], d.fn, d.scale, d.base, params=p)
    for a, b in zip(full, one):
        assert a[3:4].tobytes() == b.tobytes()


# ---- out= and T = 0 ---------------------------------------------------------------------
def test_out_parameter(ctx, inputs):
    d = inputs
    T, H = d.T, d.H
    outs = (np.zeros((T, 4, 1), np.float32), np.zeros((T, 4, 4), np.float32),
            np.zeros((T, H), np.uint16))
    got = ctx.hc_pre(d.residual, d.fn, d.scale, d.base, out=outs)
    assert all(a is b for a, b in zip(got, outs))
    fresh = ctx.hc_pre(d.residual, d.fn, d.scale, d.base)
    assert np.array_equal(outs[0].reshape(T, 4), fresh[0])
    assert np.array_equal(outs[1], fresh[1]) and np.array_equal(outs[2], fresh[2])

    res_out = np.empty((T, 4, H), np.uint16)
    assert ctx.hc_post(d.x, d.residual, d.post, d.comb, out=res_out) is res_out
    assert np.array_equal(res_out, ctx.hc_post(d.x, d.residual, d.post, d.comb))

    outs4 = (np.empty((T, 4, H), np.uint16), np.empty((T, 4), np.float32),
             np.empty((T, 4, 4), np.float32), np.empty((T, H), np.uint16))
    got4 = ctx.hc_post_pre(d.x, d.residual, d.post, d.comb, d.fn, d.scale, d.base, out=outs4)
    assert all(a is b for a, b in zip(got4, outs4))
    fresh4 = ctx.hc_post_pre(d.x, d.residual, d.post, d.comb, d.fn, d.scale, d.base)
    assert all(np.array_equal(a, b) for a, b in zip(outs4, fresh4))

    head = np.empty((T, H), np.uint16)
    assert ctx.hc_head(d.residual, d.fn_head, d.scale_head, d.base_head, out=head) is head
    assert np.array_equal(head, ctx.hc_head(d.residual, d.fn_head, d.scale_head, d.base_head))


def test_out_in_a_bigger_buffer_with_offset(ctx, inputs):
    """A view into a larger array (non-zero data offset) is written in place."""
    d = inputs
    big = np.zeros((d.T + 2, 4, d.H), np.uint16)
    view = big[1:1 + d.T]
    ctx.hc_post(d.x, d.residual, d.post, d.comb, out=view)
    assert np.array_equal(view, ctx.hc_post(d.x, d.residual, d.post, d.comb))
    assert not big[0].any() and not big[-1].any()


def test_zero_tokens(ctx):
    d = Inputs(0, 32)
    post, comb, li = ctx.hc_pre(d.residual, d.fn, d.scale, d.base)
    assert post.shape == (0, 4) and comb.shape == (0, 4, 4) and li.shape == (0, 32)
    assert ctx.hc_post(d.x, d.residual, d.post, d.comb).shape == (0, 4, 32)
    r, p, c, l = ctx.hc_post_pre(d.x, d.residual, d.post, d.comb, d.fn, d.scale, d.base)
    assert r.shape == (0, 4, 32) and p.shape == (0, 4) and c.shape == (0, 4, 4)
    assert l.shape == (0, 32)
    assert ctx.hc_head(d.residual, d.fn_head, d.scale_head, d.base_head).shape == (0, 32)


def test_workspace_on_cpu(ctx):
    assert ctx.workspace_size("hc_post_pre", 128, 4096) == 0
    assert ctx.workspace_size(mhc.OP_HC_POST, 128, 4096) == 0
    assert ctx.reserve(128, 4096) == 0
    with pytest.raises(mhc.InvalidArgument, match="hidden"):
        ctx.workspace_size("hc_pre", 4, 0)
    with pytest.raises(mhc.InvalidArgument):
        ctx.workspace_size("nope", 4, 8)


# ---- DLPack producers -----------------------------------------------------------------------
class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


_PyCapsule_New = ctypes.pythonapi.PyCapsule_New
_PyCapsule_New.restype = ctypes.py_object
_PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
_CAPSULE_NAME = ctypes.create_string_buffer(b"dltensor")


class FakeDLPack:
    """A minimal DLPack producer over a numpy array, with any dtype code and device: what a
    foreign framework hands over. Capsules have no deleter; the structs live with self."""

    def __init__(self, array, code=None, bits=None, device=(1, 0), byte_offset=0, base_ptr=None):
        self.array = array
        self.device = device
        self.shape = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
        self.m = _DLManagedTensor()
        t = self.m.dl_tensor
        t.data = base_ptr if base_ptr is not None else array.__array_interface__["data"][0]
        t.device = _DLDevice(*device)
        t.ndim = array.ndim
        t.dtype = _DLDataType(code if code is not None else 2, bits or array.itemsize * 8, 1)
        t.shape = self.shape
        t.strides = None
        t.byte_offset = byte_offset
        self.calls = 0

    def __dlpack__(self, stream=None):
        self.calls += 1
        return _PyCapsule_New(ctypes.addressof(self.m), ctypes.addressof(_CAPSULE_NAME), None)

    def __dlpack_device__(self):
        return self.device


def test_dlpack_objects_are_accepted(ctx, inputs):
    d = inputs
    res = FakeDLPack(d.residual, code=4, bits=16)
    nw = FakeDLPack(d.norm_weight, code=4, bits=16)
    got = ctx.hc_pre(res, DLPackOnly(d.fn), DLPackOnly(d.scale), DLPackOnly(d.base),
                     norm_weight=nw)
    want = ctx.hc_pre(d.residual, d.fn, d.scale, d.base, norm_weight=d.norm_weight)
    assert res.calls == 1 and nw.calls == 1
    # outputs of a non-numpy/torch producer on the host come back as numpy
    for a, b in zip(got, want):
        assert isinstance(a, np.ndarray)
        assert _bits(a).tobytes() == _bits(b).tobytes() if a.dtype != np.float32 else \
            a.tobytes() == b.tobytes()


def test_dlpack_outputs_written_in_place(ctx, inputs):
    d = inputs
    out = np.zeros((d.T, 4, d.H), np.uint16)
    ctx.hc_post(d.x, d.residual, d.post, d.comb, out=FakeDLPack(out, code=4, bits=16))
    assert np.array_equal(out, ctx.hc_post(d.x, d.residual, d.post, d.comb))


def test_dlpack_byte_offset_is_honoured(ctx, inputs):
    d = inputs
    padded = np.zeros(d.residual.size + 8, np.uint16)
    padded[8:] = d.residual.ravel()
    base = padded.__array_interface__["data"][0]
    fake = FakeDLPack(d.residual, code=4, bits=16, byte_offset=16, base_ptr=base)
    fake.keep = padded
    a = ctx.hc_head(fake, d.fn_head, d.scale_head, d.base_head)
    assert np.array_equal(_bits(a), ctx.hc_head(d.residual, d.fn_head, d.scale_head, d.base_head))


def test_raw_module_takes_capsules(ctx, inputs):
    d = inputs
    out = np.zeros((d.T, d.H), np.uint16)
    fakes = [FakeDLPack(d.residual, code=4, bits=16), FakeDLPack(out, code=4, bits=16)]
    caps = [f.__dlpack__() for f in fakes]
    st = _mhc.mhc_hc_head(ctx._handle, mhc.Params().as_tuple(), d.fn_head.__dlpack__(),
                          d.scale_head.__dlpack__(), d.base_head.__dlpack__(), caps[0], caps[1],
                          None, 0, None)
    assert st == 0
    assert np.array_equal(out, ctx.hc_head(d.residual, d.fn_head, d.scale_head, d.base_head))
    desc = _mhc.dlpack_describe(caps[0])
    assert desc[1:7] == (1, 0, 4, 16, 1, d.residual.shape)


# ---- errors -----------------------------------------------------------------------------------
def _raises(exc, fn, *args, match=None, **kw):
    with pytest.raises(exc) as info:
        fn(*args, **kw)
    e = info.value
    assert isinstance(e, mhc.MhcError)
    assert e.status == exc.status
    if match:
        assert match in e.message, e.message
    assert str(e).startswith(_mhc.mhc_status_string(e.status) + ": ")
    return e


def test_bad_shape(ctx, inputs):
    d = inputs
    bad = d.residual[:, :3]
    e = _raises(mhc.InvalidArgument, ctx.hc_pre, np.ascontiguousarray(bad), d.fn, d.scale,
                d.base, match="residual")
    assert "[T, 4, H]" in e.message
    # the message is the library's own
    assert e.message == _mhc.mhc_last_error_message()
    _raises(mhc.InvalidArgument, ctx.hc_pre, d.residual, d.fn[:, :-1].copy(), d.scale, d.base,
            match="fn: expected shape")
    _raises(mhc.InvalidArgument, ctx.hc_post, d.x[:, :-1].copy(), d.residual, d.post, d.comb,
            match="x: expected shape")
    _raises(mhc.InvalidArgument, ctx.hc_head, d.residual, d.fn, d.scale_head, d.base_head,
            match="fn_head")
    assert isinstance(pytest.raises(ValueError, ctx.hc_pre, d.residual[:, :3].copy(), d.fn,
                                    d.scale, d.base).value, mhc.InvalidArgument)


def test_wrong_dtype(ctx, inputs):
    d = inputs
    _raises(mhc.NotSupported, ctx.hc_pre, d.residual.astype(np.float32), d.fn, d.scale, d.base,
            match="residual: expected dtype bfloat16")
    _raises(mhc.NotSupported, ctx.hc_pre, d.residual, d.fn.astype(np.float64), d.scale, d.base,
            match="fn: expected dtype float32")
    _raises(mhc.NotSupported, ctx.hc_post, d.x, d.residual, d.post.astype(np.float16), d.comb,
            match="post_mix")
    _raises(mhc.NotSupported, ctx.hc_pre, d.residual, d.fn, d.scale.astype(np.complex64), d.base,
            match="scale")


def test_wrong_device(ctx, inputs):
    d = inputs
    on_gpu = FakeDLPack(d.residual, code=4, bits=16, device=(2, 0))
    e = _raises(mhc.DeviceMismatch, ctx.hc_head, on_gpu, d.fn_head, d.scale_head, d.base_head,
                out=np.empty((d.T, d.H), np.uint16), match="residual")
    assert "host memory" in e.message
    _raises(mhc.DeviceMismatch, ctx.hc_pre, d.residual, FakeDLPack(d.fn, device=(2, 1)),
            d.scale, d.base, match="fn")


def test_non_contiguous_and_overlap(ctx, inputs):
    d = inputs
    wide = np.zeros((d.T, 4, 2 * d.H), np.uint16)
    _raises(mhc.InvalidArgument, ctx.hc_pre, wide[:, :, ::2], d.fn, d.scale, d.base,
            match="strides")
    _raises(mhc.InvalidArgument, ctx.hc_post, d.x, d.residual, d.post, d.comb, out=d.residual,
            match="overlaps")
    ro = np.empty((d.T, 4, d.H), np.uint16)
    ro.flags.writeable = False
    _raises(mhc.InvalidArgument, ctx.hc_post, d.x, d.residual, d.post, d.comb, out=ro,
            match="read-only")
    _raises(mhc.InvalidArgument, ctx.hc_pre, d.residual, d.fn, d.scale, d.base, out=(1, 2),
            match="out")


def test_bad_params(ctx, inputs):
    d = inputs
    _raises(mhc.NotSupported, ctx.hc_pre, d.residual, d.fn, d.scale, d.base,
            params=mhc.Params(hc_mult=3), match="hc_mult")
    _raises(mhc.InvalidArgument, ctx.hc_pre, d.residual, d.fn, d.scale, d.base,
            params=mhc.Params(sinkhorn_iters=0), match="sinkhorn_iters")
    _raises(mhc.InvalidArgument, ctx.hc_head, d.residual, d.fn_head, d.scale_head, d.base_head,
            params=mhc.Params(rms_eps=float("nan")), match="rms_eps")
    _raises(mhc.InvalidArgument, ctx.hc_pre, d.residual, d.fn, d.scale, d.base,
            params=mhc.Params(flags=1 << 7), match="flags")
    raw = _mhc.MHC_HC_PARAMS_INIT()
    raw.size = 7
    _raises(mhc.VersionMismatch, ctx.hc_pre, d.residual, d.fn, d.scale, d.base, params=raw,
            match="MHC_HC_PARAMS_INIT")
    _raises(mhc.InvalidArgument, ctx.hc_pre, d.residual, d.fn, d.scale, d.base, params="fast")
    with pytest.raises(dataclasses_frozen_error()):
        mhc.Params().hc_mult = 5


def dataclasses_frozen_error():
    import dataclasses
    return dataclasses.FrozenInstanceError


def test_closed_context(inputs):
    d = inputs
    c = mhc.Context("cpu")
    c.close()
    c.close()  # idempotent
    assert c.closed
    _raises(mhc.InvalidHandle, c.hc_post, d.x, d.residual, d.post, d.comb, match="closed")
    _raises(mhc.InvalidHandle, c.hc_pre, d.residual, d.fn, d.scale, d.base)
    _raises(mhc.InvalidHandle, c.workspace_size, "hc_pre", 1, 8)
    with mhc.Context("cpu") as c2:
        assert not c2.closed and c2.backend == "cpu" and c2.device == 0
    assert c2.closed
    with pytest.raises(mhc.InvalidHandle):
        with c2:
            pass


def test_context_creation_errors():
    _raises(mhc.InvalidArgument, mhc.Context, "tpu")
    _raises(mhc.InvalidArgument, mhc.Context, backend=7, match="cfg->backend")
    _raises(mhc.InvalidArgument, mhc.Context, "cpu", device=1, match="device_id")
    _raises(mhc.InvalidArgument, mhc.Context, "cpu", device="cuda:0")
    try:
        mhc.Context("cuda").close()
    except (mhc.NotSupported, mhc.CudaError) as e:  # CPU-only build or no GPU
        assert e.message
    assert "check_pointers" in mhc.Context.__init__.__code__.co_varnames
    mhc.Context("cpu", check_pointers=True).close()


def test_raw_handle_errors():
    st, h = _mhc.mhc_context_create((mhc.BACKEND_CPU, 0, 0))
    assert st == 0
    assert _mhc.mhc_context_destroy(h) == 0
    st = _mhc.mhc_context_destroy(h)
    assert st == _mhc.MHC_ERROR_INVALID_HANDLE
    e = mhc.error_from_status(st)
    assert isinstance(e, mhc.InvalidHandle) and "not a live context" in e.message
    assert _mhc.mhc_hc_post(None, None, None, None, None, None, None) == \
        _mhc.MHC_ERROR_INVALID_HANDLE
    assert _mhc.mhc_context_destroy(None) == 0


def test_error_classes():
    table = {
        _mhc.MHC_ERROR_INVALID_ARGUMENT: mhc.InvalidArgument,
        _mhc.MHC_ERROR_INVALID_HANDLE: mhc.InvalidHandle,
        _mhc.MHC_ERROR_NOT_SUPPORTED: mhc.NotSupported,
        _mhc.MHC_ERROR_DEVICE_MISMATCH: mhc.DeviceMismatch,
        _mhc.MHC_ERROR_WORKSPACE_TOO_SMALL: mhc.WorkspaceTooSmall,
        _mhc.MHC_ERROR_OUT_OF_MEMORY: mhc.OutOfMemory,
        _mhc.MHC_ERROR_CUDA: mhc.CudaError,
        _mhc.MHC_ERROR_VERSION_MISMATCH: mhc.VersionMismatch,
        _mhc.MHC_ERROR_INTERNAL: mhc.InternalError,
    }
    for status, cls in table.items():
        e = mhc.error_from_status(status, "detail")
        assert type(e) is cls and issubclass(cls, mhc.MhcError)
        assert e.status == status == cls.status and e.message == "detail"
        assert str(e) == f"{_mhc.mhc_status_string(status)}: detail"
        again = pickle.loads(pickle.dumps(e))
        assert type(again) is cls and again.status == status and again.message == "detail"
    e = mhc.error_from_status(99, "newer")
    assert type(e) is mhc.MhcError and e.status == 99


# ---- garbage never crashes --------------------------------------------------------------
class BrokenDLPack:
    def __dlpack__(self, stream=None):
        return "not a capsule"

    def __dlpack_device__(self):
        return (1, 0)


GARBAGE = [None, 3, 2.5, "residual", b"\x00" * 8, [1, 2, 3], {"a": 1}, object(), BrokenDLPack(),
           np.zeros(()), np.zeros((4, 4, 4, 4, 4, 4, 4, 4, 4), np.uint16), np.array(["x"]),
           np.zeros((2, 4, 0), np.uint16), np.zeros((2, 4, 8), dtype=">f4"),
           np.zeros((2, 4, 8), dtype=object)]


@pytest.mark.parametrize("pos", range(4))
def test_garbage_inputs_raise(ctx, inputs, pos):
    d = inputs
    args = [d.residual, d.fn, d.scale, d.base]
    for g in GARBAGE:
        a = list(args)
        a[pos] = g
        with pytest.raises((mhc.MhcError, TypeError, ValueError, OverflowError, BufferError)):
            ctx.hc_pre(*a)


def test_garbage_descriptors_in_the_raw_module(ctx, inputs):
    d = inputs
    good = np.zeros((2, 4, 8), np.uint16)
    ptr = good.__array_interface__["data"][0]
    p = mhc.Params().as_tuple()
    bad_descs = [
        (), (1, 2), (ptr, 1, 0, 4, 16, 1, (2, 4, 8), None),  # wrong lengths
        (ptr, 1, 0, 4, 16, 1, "shape", None, 0),
        (ptr, 1, 0, 4, 16, 1, (2, 4, 8), (1,), 0),  # strides length
        (ptr, 1, 0, 4, 16, 1, (2, 4, 8), None, -1),  # negative byte_offset
        (ptr, 1, 0, 300, 16, 1, (2, 4, 8), None, 0),  # dtype code out of range
        (-5, 1, 0, 4, 16, 1, (2, 4, 8), None, 0),  # negative address
        (ptr, 1, 0, 4, 16, 1, (2, 4, 8) * 3, None, 0),  # ndim 9
        (ptr, 1, 0, 4, 16, 1, (2, 4, "8"), None, 0),
        (ptr, 1, 0, 4, 16, 1, (2, 4, 1 << 70), None, 0),
        ("x", 1, 0, 4, 16, 1, (2, 4, 8), None, 0),
    ]
    for desc in bad_descs:
        with pytest.raises((TypeError, ValueError, OverflowError)):
            _mhc.mhc_hc_post(ctx._handle, desc, desc, None, None, None, None)
    # well-formed descriptors the library must reject (never dereferenced)
    rejected = [
        (ptr, 1, 0, 4, 16, 1, (2, -4, 8), None, 0),  # negative dimension
        (0, 1, 0, 4, 16, 1, (2, 4, 8), None, 0),  # NULL data
        (ptr, 1, 0, 4, 16, 1, (2, 4, 8), (0, 0, 0), 0),  # zero strides
        (ptr, 1, 0, 4, 16, 1, (1 << 40, 4, 1 << 40), None, 0),  # size overflow
        (ptr, 1, 0, 4, 16, 1, (2, 4, 8), None, (1 << 64) - 2),  # byte_offset overflow
        (ptr + 1, 1, 0, 4, 16, 1, (2, 4, 8), None, 0),  # misaligned
        (ptr, 1, 0, 4, 16, 2, (2, 4, 8), None, 0),  # lanes
        (ptr, 7, 0, 4, 16, 1, (2, 4, 8), None, 0),  # device type
    ]
    for desc in rejected:
        st = _mhc.mhc_hc_head(ctx._handle, p, d.fn_head.__dlpack__(), d.scale_head.__dlpack__(),
                              d.base_head.__dlpack__(), desc, None, None, 0, None)
        assert st != 0, desc
        assert mhc.error_from_status(st).message
    for weights in [(), (1,), ("a", "b", "c"), (None, None, None, None, None)]:
        with pytest.raises((TypeError, ValueError)):
            _mhc.mhc_hc_pre(ctx._handle, p, weights, None, None, None, None, None, 0, None)
    for params in [(), (4,) * 7, ("4", 20, 1e-6, 1e-6, 1e-6, 2.0, 1e-6, 0),
                   (4, 20, "e", 1e-6, 1e-6, 2.0, 1e-6, 0), (4, 20, 1e-6, 1e-6, 1e-6, 2.0, 1e-6, -1)]:
        with pytest.raises((TypeError, ValueError, OverflowError)):
            _mhc.mhc_workspace_size(ctx._handle, 1, params, 1, 8)
    with pytest.raises((TypeError, OverflowError)):
        _mhc.mhc_hc_post(ctx._handle, None, None, None, None, None, "stream")
    with pytest.raises(TypeError):
        _mhc.mhc_context_create(("cpu", 0, 0))
    with pytest.raises(TypeError):
        _mhc.dlpack_describe(object())


def test_threads_share_a_context(inputs):
    """The GIL is released in the call; concurrent calls with their own outputs agree."""
    d = Inputs(16, 256, seed=9)
    with mhc.Context("cpu") as c:
        want = c.hc_post_pre(d.x, d.residual, d.post, d.comb, d.fn, d.scale, d.base)
        errors = []

        def work():
            try:
                for _ in range(3):
                    got = c.hc_post_pre(d.x, d.residual, d.post, d.comb, d.fn, d.scale, d.base)
                    assert all(a.tobytes() == b.tobytes() for a, b in zip(got, want))
            except Exception as e:  # pragma: no cover
                errors.append(e)

        ts = [threading.Thread(target=work) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors
