"""torch tensors: CPU backend (CPU tensors), the torch.library ops (opcheck, torch.compile),
and on a GPU the CUDA backend, streams, CUDA-graph capture and torch.compile with CUDA graphs.
Skipped without torch; the CUDA part is skipped without a GPU or a CUDA build of libmhc."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mhc  # noqa: E402
import mhc.torch as mt  # noqa: E402
import reference as ref  # noqa: E402
from conftest import DLPackOnly, Inputs  # noqa: E402


def t_bf16(bits, device="cpu"):
    return torch.from_numpy(np.ascontiguousarray(bits).view(np.int16)).view(torch.bfloat16).to(device)


def t_f32(a, device="cpu"):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(device)


def bits(t):
    return t.detach().contiguous().cpu().view(torch.int16).numpy().view(np.uint16)


def f64(t):
    return t.detach().cpu().double().numpy()


class TorchInputs:
    def __init__(self, T=5, H=64, seed=0, device="cpu"):
        d = Inputs(T, H, seed)
        self.np = d
        self.T, self.H = T, H
        for k in ("residual", "x", "norm_weight"):
            setattr(self, k, t_bf16(getattr(d, k), device))
        for k in ("fn", "scale", "base", "fn2", "scale2", "base2", "fn_head", "scale_head",
                  "base_head", "post", "comb"):
            setattr(self, k, t_f32(getattr(d, k), device))


def same_bits(a, b):
    if a.dtype == torch.bfloat16:
        return np.array_equal(bits(a), bits(b))
    return torch.equal(a.cpu(), b.cpu())


def _cuda_context():
    if not torch.cuda.is_available():
        return None
    try:
        return mhc.Context("cuda", device=0)
    except (mhc.NotSupported, mhc.CudaError):
        return None


_CUDA_CTX = _cuda_context()
needs_cuda = pytest.mark.skipif(_CUDA_CTX is None,
                                reason="needs a GPU, torch with CUDA and libmhc built with CUDA")


# ---- CPU backend with torch CPU tensors -------------------------------------------------------
@pytest.fixture
def cpu():
    with mhc.Context("cpu") as c:
        yield c


def test_cpu_tensors_match_numpy(cpu):
    d = TorchInputs(6, 48, seed=1)
    post, comb, li = cpu.hc_pre(d.residual, d.fn, d.scale, d.base, norm_weight=d.norm_weight)
    assert isinstance(li, torch.Tensor) and li.dtype == torch.bfloat16 and li.device.type == "cpu"
    assert post.shape == (6, 4) and post.dtype == torch.float32 and comb.shape == (6, 4, 4)
    n = d.np
    npost, ncomb, nli = cpu.hc_pre(n.residual, n.fn, n.scale, n.base, norm_weight=n.norm_weight)
    assert np.array_equal(post.numpy(), npost) and np.array_equal(comb.numpy(), ncomb)
    assert np.array_equal(bits(li), nli)
    r, p2, c2, l2 = cpu.hc_post_pre(d.x, d.residual, post, comb, d.fn2, d.scale2, d.base2)
    r_ref = cpu.hc_post(d.x, d.residual, post, comb)
    assert same_bits(r, r_ref)
    for a, b in zip((p2, c2, l2), cpu.hc_pre(r_ref, d.fn2, d.scale2, d.base2)):
        assert same_bits(a, b)
    head = cpu.hc_head(r, d.fn_head, d.scale_head, d.base_head)
    ref.assert_bf16_close(bits(head), ref.hc_head(bits(r), n.fn_head, n.scale_head, n.base_head))


def test_cpu_tensor_out_and_views(cpu):
    d = TorchInputs(4, 32)
    big = torch.zeros(6, 4, 32, dtype=torch.bfloat16)
    out = big[1:5]  # storage offset: data_ptr() includes it
    assert cpu.hc_post(d.x, d.residual, d.post, d.comb, out=out) is out
    assert same_bits(out, cpu.hc_post(d.x, d.residual, d.post, d.comb))
    assert not big[0].float().any() and not big[5].float().any()
    with pytest.raises(mhc.InvalidArgument, match="strides"):
        cpu.hc_post(d.x, d.residual.transpose(0, 1).contiguous().transpose(0, 1), d.post, d.comb)
    with pytest.raises(mhc.NotSupported, match="residual: expected dtype bfloat16"):
        cpu.hc_pre(d.residual.half(), d.fn, d.scale, d.base)
    with pytest.raises(mhc.NotSupported, match="complex"):
        cpu.hc_pre(d.residual, d.fn.to(torch.complex64), d.scale, d.base)
    with pytest.raises(mhc.DeviceMismatch, match="meta"):
        cpu.hc_pre(d.residual.to("meta"), d.fn, d.scale, d.base)


def test_dlpack_of_torch(cpu):
    d = TorchInputs(3, 16)
    got = cpu.hc_head(DLPackOnly(d.residual), DLPackOnly(d.fn_head), DLPackOnly(d.scale_head),
                      DLPackOnly(d.base_head))
    want = cpu.hc_head(d.residual, d.fn_head, d.scale_head, d.base_head)
    assert np.array_equal(np.asarray(got).view(np.uint16), bits(want))


# ---- torch.library ops ------------------------------------------------------------------------
def _op_args(d):
    p = mhc.Params().as_tuple()
    return {
        "hc_pre": (d.residual, d.fn, d.scale, d.base, d.norm_weight, *p),
        "hc_post": (d.x, d.residual, d.post, d.comb),
        "hc_post_pre": (d.x, d.residual, d.post, d.comb, d.fn, d.scale, d.base, None, *p),
        "hc_head": (d.residual, d.fn_head, d.scale_head, d.base_head, *p),
    }


@pytest.mark.parametrize("op", ["hc_pre", "hc_post", "hc_post_pre", "hc_head"])
def test_opcheck_cpu(op):
    d = TorchInputs(3, 16)
    torch.library.opcheck(getattr(torch.ops.mhc, op).default, _op_args(d)[op])


def _layer_loop(d, gains):
    """A two-sub-layer stage through mhc.torch (what a model's forward would do)."""
    post, comb, li = mt.hc_pre(d.residual, d.fn, d.scale, d.base)
    y = (li.float() * gains[0]).to(torch.bfloat16)
    res, post, comb, li = mt.hc_post_pre(y, d.residual, post, comb, d.fn2, d.scale2, d.base2)
    y = (li.float() * gains[1]).to(torch.bfloat16)
    res = mt.hc_post(y, res, post, comb)
    return mt.hc_head(res, d.fn_head, d.scale_head, d.base_head), res


def test_ops_match_context_cpu(cpu):
    d = TorchInputs(5, 32, seed=4)
    a = mt.hc_pre(d.residual, d.fn, d.scale, d.base, norm_weight=d.norm_weight,
                  params=mhc.Params(post_mult=1.0))
    b = cpu.hc_pre(d.residual, d.fn, d.scale, d.base, norm_weight=d.norm_weight,
                   params=mhc.Params(post_mult=1.0))
    assert all(same_bits(x, y) for x, y in zip(a, b))
    # non-contiguous inputs are made dense by the op wrappers
    res_nc = d.residual.transpose(0, 1).contiguous().transpose(0, 1)
    assert same_bits(mt.hc_post(d.x, res_nc, d.post, d.comb), cpu.hc_post(d.x, d.residual, d.post, d.comb))


def test_compile_cpu():
    d = TorchInputs(4, 32, seed=2)
    gains = [torch.full((32,), 1.5), torch.full((32,), 0.75)]
    eager = _layer_loop(d, gains)
    compiled = torch.compile(_layer_loop, backend="aot_eager", fullgraph=True)
    got = compiled(d, gains)
    assert all(same_bits(x, y) for x, y in zip(got, eager))


# ---- CUDA ----------------------------------------------------------------------------------
@pytest.fixture
def cuda_ctx():
    return _CUDA_CTX


@needs_cuda
@pytest.mark.parametrize("T,H", [(1, 4096), (4, 7168), (17, 4096), (64, 1280), (3, 100)])
def test_cuda_matches_reference(cuda_ctx, T, H):
    d = TorchInputs(T, H, seed=T + H, device="cuda")
    n = d.np
    post, comb, li = cuda_ctx.hc_pre(d.residual, d.fn, d.scale, d.base)
    assert li.device.type == "cuda" and li.dtype == torch.bfloat16
    rp, rc, rl, mag = ref.hc_pre(n.residual, n.fn, n.scale, n.base, magnitudes=True)
    ref.assert_mix_close(f64(post), rp, "post_mix")
    ref.assert_mix_close(f64(comb), rc, "comb_mix")
    ref.assert_bf16_close(bits(li), rl, what="layer_input", magnitude=mag)
    r = cuda_ctx.hc_post(d.x, d.residual, d.post, d.comb)
    rr, mag = ref.hc_post(n.x, n.residual, n.post, n.comb, magnitudes=True)
    ref.assert_bf16_close(bits(r), rr, what="post", magnitude=mag)
    h = cuda_ctx.hc_head(d.residual, d.fn_head, d.scale_head, d.base_head)
    rh, mag = ref.hc_head(n.residual, n.fn_head, n.scale_head, n.base_head, magnitudes=True)
    ref.assert_bf16_close(bits(h), rh, what="head", magnitude=mag)
    _, _, li_n = cuda_ctx.hc_pre(d.residual, d.fn, d.scale, d.base, norm_weight=d.norm_weight)
    _, _, rl_n, mag = ref.hc_pre(n.residual, n.fn, n.scale, n.base, n.norm_weight, magnitudes=True)
    # one more ulp: the fused RMSNorm rounds the sum to bf16 before scaling (spec §2.6)
    ref.assert_bf16_close(bits(li_n), rl_n, ulps=2.0, what="layer_input (fused RMSNorm)",
                          magnitude=mag)


@needs_cuda
@pytest.mark.parametrize("T,H", [(1, 4096), (8, 7168), (33, 512), (2, 100)])
@pytest.mark.parametrize("batch_invariant", [False, True])
def test_cuda_fused_equals_post_then_pre(cuda_ctx, T, H, batch_invariant):
    d = TorchInputs(T, H, seed=T, device="cuda")
    p = mhc.Params(batch_invariant=batch_invariant)
    fused = cuda_ctx.hc_post_pre(d.x, d.residual, d.post, d.comb, d.fn2, d.scale2, d.base2,
                                 params=p)
    r = cuda_ctx.hc_post(d.x, d.residual, d.post, d.comb)
    unfused = (r,) + tuple(cuda_ctx.hc_pre(r, d.fn2, d.scale2, d.base2, params=p))
    for a, b in zip(fused, unfused):
        assert same_bits(a, b)


@needs_cuda
def test_cuda_batch_invariance(cuda_ctx):
    d = TorchInputs(64, 4096, seed=5, device="cuda")
    p = mhc.Params(batch_invariant=True)
    full = cuda_ctx.hc_pre(d.residual, d.fn, d.scale, d.base, params=p)
    for t in (0, 17, 63):
        one = cuda_ctx.hc_pre(d.residual[t:t + 1], d.fn, d.scale, d.base, params=p)
        for a, b in zip(full, one):
            assert same_bits(a[t:t + 1], b)


@needs_cuda
def test_cuda_streams_and_errors(cuda_ctx):
    d = TorchInputs(8, 1024, device="cuda")
    want = cuda_ctx.hc_post(d.x, d.residual, d.post, d.comb)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # default: torch's current stream
        a = cuda_ctx.hc_post(d.x, d.residual, d.post, d.comb)
    b = cuda_ctx.hc_post(d.x, d.residual, d.post, d.comb, stream=s)  # torch stream object
    c = cuda_ctx.hc_post(d.x, d.residual, d.post, d.comb, stream=s.cuda_stream)  # raw handle
    s.synchronize()
    for got in (a, b, c):
        assert same_bits(got, want)
    with pytest.raises(mhc.DeviceMismatch, match="residual"):
        cuda_ctx.hc_post(d.x, d.residual.cpu(), d.post, d.comb, out=torch.empty_like(d.residual))
    with pytest.raises(mhc.InvalidArgument):
        cuda_ctx.hc_post(d.x, d.residual, d.post, d.comb, stream="default")
    e = TorchInputs(0, 256, device="cuda")
    assert cuda_ctx.hc_pre(e.residual, e.fn, e.scale, e.base)[2].shape == (0, 256)
    if torch.cuda.device_count() > 1:
        with pytest.raises(mhc.DeviceMismatch, match="device"):
            cuda_ctx.hc_post(d.x.to("cuda:1"), d.residual, d.post, d.comb)


@needs_cuda
def test_cuda_dlpack_producer(cuda_ctx):
    d = TorchInputs(4, 256, device="cuda")
    seen = []

    class Wrap:
        def __init__(self, t):
            self.t = t

        def __dlpack__(self, stream=None):
            seen.append(stream)
            return self.t.__dlpack__(stream=stream)

        def __dlpack_device__(self):
            return self.t.__dlpack_device__()

    got = cuda_ctx.hc_head(Wrap(d.residual), d.fn_head, d.scale_head, d.base_head)
    assert isinstance(got, torch.Tensor) and got.device.type == "cuda"
    assert same_bits(got, cuda_ctx.hc_head(d.residual, d.fn_head, d.scale_head, d.base_head))
    assert seen and all(isinstance(s, int) and s != 0 for s in seen)


@needs_cuda
def test_cuda_workspace_reserve_and_growth():
    with mhc.Context("cuda") as c:
        H = 4096
        need = max(c.workspace_size(op, 512, H) for op in ("hc_pre", "hc_post_pre", "hc_head"))
        assert c.reserve(512, H) >= need
        size = c.workspace_bytes
        d = TorchInputs(512, H, device="cuda")
        c.hc_post_pre(d.x, d.residual, d.post, d.comb, d.fn, d.scale, d.base)
        assert c.workspace_bytes == size  # no growth within the reservation
        c.release_workspace()
        assert c.workspace_bytes == 0
        c.hc_pre(d.residual[:1], d.fn, d.scale, d.base)
        c.hc_pre(d.residual, d.fn, d.scale, d.base)  # grows (maybe), never shrinks
        assert c.workspace_bytes >= c.workspace_size("hc_pre", 512, H)
        torch.cuda.synchronize()


@needs_cuda
@pytest.mark.parametrize("T", [1, 16, 128])
def test_cuda_graph_capture(T):
    H = 4096
    with mhc.Context("cuda") as c:
        d = TorchInputs(T, H, seed=T, device="cuda")
        outs = (torch.empty(T, 4, H, dtype=torch.bfloat16, device="cuda"),
                torch.empty(T, 4, device="cuda"), torch.empty(T, 4, 4, device="cuda"),
                torch.empty(T, H, dtype=torch.bfloat16, device="cuda"))
        c.reserve(T, H)
        size = c.workspace_bytes
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):  # warm-up on a side stream, as torch recommends
            for _ in range(2):
                c.hc_post_pre(d.x, d.residual, d.post, d.comb, d.fn, d.scale, d.base, out=outs)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            c.hc_post_pre(d.x, d.residual, d.post, d.comb, d.fn, d.scale, d.base, out=outs)
            head = c.hc_head(outs[0], d.fn_head, d.scale_head, d.base_head)  # allocating form
        assert c.workspace_bytes == size
        n2 = TorchInputs(T, H, seed=T + 1000, device="cuda")
        d.x.copy_(n2.x)
        d.residual.copy_(n2.residual)
        g.replay()
        torch.cuda.synchronize()
        want = c.hc_post_pre(n2.x, n2.residual, d.post, d.comb, d.fn, d.scale, d.base)
        for a, b in zip(outs, want):
            assert same_bits(a, b)
        assert same_bits(head, c.hc_head(want[0], d.fn_head, d.scale_head, d.base_head))
        del g


@needs_cuda
@pytest.mark.parametrize("op", ["hc_pre", "hc_post", "hc_post_pre", "hc_head"])
def test_opcheck_cuda(op):
    d = TorchInputs(3, 256, device="cuda")
    torch.library.opcheck(getattr(torch.ops.mhc, op).default, _op_args(d)[op])


@needs_cuda
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compile_cuda(mode):
    torch._dynamo.reset()
    d = TorchInputs(8, 1024, seed=6, device="cuda")
    gains = [torch.full((1024,), 1.5, device="cuda"), torch.full((1024,), 0.75, device="cuda")]
    eager = _layer_loop(d, gains)
    compiled = torch.compile(_layer_loop, mode=mode, fullgraph=True)
    for _ in range(3):  # warm-up, recording, replay (reduce-overhead uses CUDA graphs)
        got = compiled(d, gains)
        got = tuple(t.clone() for t in got)
    torch.cuda.synchronize()
    for a, b in zip(got, eager):
        assert same_bits(a, b)
