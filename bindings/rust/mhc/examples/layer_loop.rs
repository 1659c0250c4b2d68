//! A DeepSeek-V4-shaped layer loop on one pipeline stage, driven through the safe `mhc` crate.
//! The program is defined in examples/LAYER_LOOP.md; every binding's example runs the same loop
//! and prints the same checksum as examples/c/layer_loop.c.
//!
//!   cargo run --example layer_loop -- [--tokens T] [--hidden H] [--layers L] [--seed S] [--cuda]
//!
//! Arithmetic: every `a * b` and `a + b` below is one f32 operation; Rust never contracts them
//! into fused multiply-adds (only an explicit `mul_add` would).
use std::process::exit;
use std::time::Instant;

use mhc::{
    Backend, Bf16, Context, HeadWeights, Params, Stream, TensorMut, TensorRef, Weights, Workspace,
};

/// splitmix64, LAYER_LOOP.md "Random numbers".
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// float32(next() >> 40) * 2^-24 * 2 - 1, exact in f32, in [-1, 1).
    fn u(&mut self) -> f32 {
        let k = (self.next() >> 40) as f32;
        let scaled = k * (1.0f32 / 16_777_216.0);
        let twice = scaled * 2.0f32;
        twice - 1.0f32
    }

    /// n values of `u() * mul + add`.
    fn gen(&mut self, n: usize, mul: f32, add: f32) -> Vec<f32> {
        (0..n).map(|_| self.u() * mul + add).collect()
    }
}

/// 64-bit FNV-1a over bf16 values, each as 2 little-endian bytes.
fn fnv1a(mut h: u64, v: &[Bf16]) -> u64 {
    for x in v {
        for byte in x.to_bits().to_le_bytes() {
            h = (h ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

struct Args {
    tokens: usize,
    hidden: usize,
    layers: usize,
    seed: u64,
    cuda: bool,
}

fn usage() -> ! {
    eprintln!("usage: layer_loop [--tokens T] [--hidden H] [--layers L] [--seed S] [--cuda]");
    exit(2)
}

fn parse_u64(s: &str) -> Option<u64> {
    // Like the C example's strtoull(.., 0): decimal, 0x hex or 0 octal.
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

fn parse_args() -> Args {
    let mut a = Args {
        tokens: 4,
        hidden: 256,
        layers: 2,
        seed: 42,
        cuda: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        if flag == "--cuda" {
            a.cuda = true;
            i += 1;
            continue;
        }
        let Some(value) = argv.get(i + 1) else {
            usage()
        };
        let count = || -> usize {
            value.parse().unwrap_or_else(|_| {
                eprintln!("{flag}: expected a non-negative integer, got {value:?}");
                exit(2)
            })
        };
        match flag {
            "--tokens" => a.tokens = count(),
            "--hidden" => a.hidden = count(),
            "--layers" => a.layers = count(),
            "--seed" => a.seed = parse_u64(value).unwrap_or_else(|| usage()),
            _ => usage(),
        }
        i += 2;
    }
    if a.hidden < 1 {
        eprintln!("need T >= 0, H >= 1, L >= 0");
        exit(2);
    }
    a
}

/// One sub-layer's weights (host copies; `gain` drives the stand-in sub-layer).
struct SubLayer {
    fn_: Vec<f32>,
    scale: Vec<f32>,
    base: Vec<f32>,
    gain: Vec<f32>,
}

/// The host inputs of the loop, shared by both backends.
struct Inputs {
    /// The initial residual `[T, 4, H]`: each token's embedding copied to the 4 streams.
    residual: Vec<Bf16>,
    subs: Vec<SubLayer>,
    head_fn: Vec<f32>,
    head_scale: Vec<f32>,
    head_base: Vec<f32>,
}

fn inputs(args: &Args) -> Inputs {
    let (t, h, l) = (args.tokens, args.hidden, args.layers);
    let (s_count, k) = (2 * l, 4 * h);
    let mut rng = Rng(args.seed);

    // 1. embeddings, 2. sub-layer weights, 3. head weights: in this order (LAYER_LOOP.md).
    let emb: Vec<Bf16> = (0..t * h).map(|_| Bf16::from_f32(rng.u())).collect();
    let subs: Vec<SubLayer> = (0..s_count)
        .map(|_| SubLayer {
            fn_: rng.gen(24 * k, 0.02, 0.0),
            scale: rng.gen(3, 0.1, 1.0),
            base: rng.gen(24, 0.1, 0.0),
            gain: rng.gen(h, 0.5, 1.0),
        })
        .collect();
    let head_fn = rng.gen(4 * k, 0.02, 0.0);
    let head_scale = rng.gen(1, 0.1, 1.0);
    let head_base = rng.gen(4, 0.1, 0.0);
    Inputs {
        residual: (0..t)
            .flat_map(|ti| emb[ti * h..(ti + 1) * h].repeat(4))
            .collect(),
        subs,
        head_fn,
        head_scale,
        head_base,
    }
}

/// Stand-in sub-layer: y = bf16(li * gain), `gain` `[H]` broadcast over the tokens.
fn stand_in_sublayer(li: &[Bf16], gain: &[f32], y: &mut [Bf16]) {
    let h = gain.len();
    for (i, v) in y.iter_mut().enumerate() {
        *v = Bf16::from_f32(li[i].to_f32() * gain[i % h]);
    }
}

/// Prints the time of layer `s / 2` since `t_layer`, and restarts `t_layer`.
fn print_layer_time(s: usize, t_layer: &mut Instant) {
    let now = Instant::now();
    println!(
        "layer {}: {:.1} us",
        s / 2,
        (now - *t_layer).as_secs_f64() * 1e6
    );
    *t_layer = now;
}

fn print_stage(args: &Args, backend: &str, t0: Instant) {
    println!(
        "stage: {} layers, T={}, H={}, backend={backend}, total {:.1} us",
        args.layers,
        args.tokens,
        args.hidden,
        t0.elapsed().as_secs_f64() * 1e6
    );
}

/// The checksum of LAYER_LOOP.md: FNV-1a over the head output, then the final residual.
fn print_checksum(out: &[Bf16], res: &[Bf16]) {
    let sum = fnv1a(fnv1a(0xcbf2_9ce4_8422_2325, out), res);
    println!("checksum: 0x{sum:016x}");
}

fn main() {
    let args = parse_args();
    if let Err(e) = run(&args) {
        eprintln!("layer_loop: {e}");
        exit(1);
    }
}

fn run(args: &Args) -> mhc::Result<()> {
    if args.cuda {
        #[cfg(target_os = "linux")]
        return cuda::run(args);
        #[cfg(not(target_os = "linux"))]
        {
            eprintln!("--cuda needs Linux (libcudart is loaded with dlopen)");
            exit(2);
        }
    }
    let (t, h, l) = (args.tokens, args.hidden, args.layers);
    let (s_count, k) = (2 * l, 4 * h);
    let Inputs {
        residual: mut res,
        subs,
        head_fn,
        head_scale,
        head_base,
    } = inputs(args);

    let ctx = Context::new(Backend::Cpu)?;
    let params = Params::default();
    let mut ws = Workspace::host(ctx.max_workspace_size(&params, t, h)?);

    let weights: Vec<Weights> = subs
        .iter()
        .map(|s| {
            Ok(Weights::new(
                TensorRef::new(&s.fn_, &[24, k])?,
                TensorRef::new(&s.scale, &[3])?,
                TensorRef::new(&s.base, &[24])?,
            ))
        })
        .collect::<mhc::Result<_>>()?;
    let head = HeadWeights::new(
        TensorRef::new(&head_fn, &[4, k])?,
        TensorRef::new(&head_scale, &[1])?,
        TensorRef::new(&head_base, &[4])?,
    );

    // State: the current and the next buffer of each state tensor, swapped at every boundary.
    let mut res_next = vec![Bf16::ZERO; t * 4 * h];
    let (mut post, mut post_next) = (vec![0f32; t * 4], vec![0f32; t * 4]);
    let (mut comb, mut comb_next) = (vec![0f32; t * 16], vec![0f32; t * 16]);
    let (mut li, mut li_next) = (vec![Bf16::ZERO; t * h], vec![Bf16::ZERO; t * h]);
    let mut y = vec![Bf16::ZERO; t * h];
    let mut out = vec![Bf16::ZERO; t * h];
    let stream = Stream::default();

    let t0 = Instant::now();
    let mut t_layer = t0;
    if s_count > 0 {
        ctx.hc_pre(
            &params,
            &weights[0],
            &TensorRef::new(&res, &[t, 4, h])?,
            &mut TensorMut::new(&mut post, &[t, 4])?,
            &mut TensorMut::new(&mut comb, &[t, 4, 4])?,
            &mut TensorMut::new(&mut li, &[t, h])?,
            Some(&mut ws),
            stream,
        )?;
    }
    for s in 0..s_count {
        stand_in_sublayer(&li, &subs[s].gain, &mut y);
        let (x, r) = (
            TensorRef::new(&y, &[t, h])?,
            TensorRef::new(&res, &[t, 4, h])?,
        );
        let (pm, cm) = (
            TensorRef::new(&post, &[t, 4])?,
            TensorRef::new(&comb, &[t, 4, 4])?,
        );
        let mut r_out = TensorMut::new(&mut res_next, &[t, 4, h])?;
        if s + 1 < s_count {
            ctx.hc_post_pre(
                &params,
                &weights[s + 1],
                &x,
                &r,
                &pm,
                &cm,
                &mut r_out,
                &mut TensorMut::new(&mut post_next, &[t, 4])?,
                &mut TensorMut::new(&mut comb_next, &[t, 4, 4])?,
                &mut TensorMut::new(&mut li_next, &[t, h])?,
                Some(&mut ws),
                stream,
            )?;
            std::mem::swap(&mut post, &mut post_next);
            std::mem::swap(&mut comb, &mut comb_next);
            std::mem::swap(&mut li, &mut li_next);
        } else {
            ctx.hc_post(&x, &r, &pm, &cm, &mut r_out, stream)?;
        }
        std::mem::swap(&mut res, &mut res_next);
        if s % 2 == 1 {
            print_layer_time(s, &mut t_layer);
        }
    }
    ctx.hc_head(
        &params,
        &head,
        &TensorRef::new(&res, &[t, 4, h])?,
        &mut TensorMut::new(&mut out, &[t, h])?,
        Some(&mut ws),
        stream,
    )?;
    print_stage(args, "cpu", t0);
    print_checksum(&out, &res);
    Ok(())
}

/// `--cuda`: the same loop on the CUDA backend, device 0. The crate itself allocates no device
/// memory, so this loads the CUDA runtime with dlopen (no build-time CUDA dependency) and hands
/// device pointers to the library through the `unsafe` view constructors: the one place where
/// a user of `mhc` writes `unsafe`.
#[cfg(target_os = "linux")]
mod cuda {
    use std::ffi::{c_char, c_int, c_void, CStr};
    use std::process::exit;
    use std::time::Instant;

    use super::{inputs, print_checksum, print_layer_time, print_stage, stand_in_sublayer, Args};
    use mhc::{
        Backend, Bf16, Context, Element, HeadWeights, Params, Stream, TensorMut, TensorRef,
        Weights, Workspace,
    };

    extern "C" {
        fn dlopen(filename: *const c_char, flag: c_int) -> *mut c_void;
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    }
    const RTLD_NOW: c_int = 2;
    const H2D: c_int = 1;
    const D2H: c_int = 2;

    type Malloc = unsafe extern "C" fn(*mut *mut c_void, usize) -> c_int;
    type Free = unsafe extern "C" fn(*mut c_void) -> c_int;
    type Memcpy = unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int) -> c_int;
    type Sync = unsafe extern "C" fn() -> c_int;

    struct Cudart {
        malloc: Malloc,
        free: Free,
        memcpy: Memcpy,
        sync: Sync,
    }

    impl Cudart {
        fn load() -> Cudart {
            let names: [&CStr; 4] = [
                c"libcudart.so",
                c"libcudart.so.13",
                c"libcudart.so.12",
                c"libcudart.so.11.0",
            ];
            // SAFETY: dlopen/dlsym with NUL-terminated names; symbols are cast to the CUDA
            // runtime's documented signatures.
            unsafe {
                let lib = names
                    .iter()
                    .map(|n| dlopen(n.as_ptr(), RTLD_NOW))
                    .find(|h| !h.is_null());
                let Some(lib) = lib else {
                    eprintln!("--cuda: could not load libcudart (set LD_LIBRARY_PATH)");
                    exit(1)
                };
                let sym = |name: &CStr| {
                    let p = dlsym(lib, name.as_ptr());
                    if p.is_null() {
                        eprintln!("--cuda: libcudart lacks {name:?}");
                        exit(1)
                    }
                    p
                };
                Cudart {
                    malloc: std::mem::transmute::<*mut c_void, Malloc>(sym(c"cudaMalloc")),
                    free: std::mem::transmute::<*mut c_void, Free>(sym(c"cudaFree")),
                    memcpy: std::mem::transmute::<*mut c_void, Memcpy>(sym(c"cudaMemcpy")),
                    sync: std::mem::transmute::<*mut c_void, Sync>(sym(c"cudaDeviceSynchronize")),
                }
            }
        }

        fn ok(rc: c_int, what: &str) {
            if rc != 0 {
                eprintln!("--cuda: {what} failed with cudaError {rc}");
                exit(1);
            }
        }
    }

    /// A device buffer of `len` elements of T.
    struct DevBuf<'c, T> {
        rt: &'c Cudart,
        ptr: *mut T,
        len: usize,
    }

    impl<'c, T: Element> DevBuf<'c, T> {
        fn new(rt: &'c Cudart, len: usize) -> Self {
            let mut p: *mut c_void = std::ptr::null_mut();
            // SAFETY: cudaMalloc writes a device pointer into p.
            Cudart::ok(
                unsafe { (rt.malloc)(&mut p, (len * size_of::<T>()).max(1)) },
                "cudaMalloc",
            );
            DevBuf {
                rt,
                ptr: p as *mut T,
                len,
            }
        }
        fn upload(rt: &'c Cudart, host: &[T]) -> Self {
            let b = Self::new(rt, host.len());
            b.store(host);
            b
        }
        fn store(&self, host: &[T]) {
            assert_eq!(host.len(), self.len);
            if self.len > 0 {
                // SAFETY: both ranges hold len elements.
                Cudart::ok(
                    unsafe {
                        (self.rt.memcpy)(
                            self.ptr as *mut c_void,
                            host.as_ptr() as *const c_void,
                            self.len * size_of::<T>(),
                            H2D,
                        )
                    },
                    "cudaMemcpy",
                );
            }
        }
        fn load(&self, host: &mut [T]) {
            assert_eq!(host.len(), self.len);
            if self.len > 0 {
                // SAFETY: both ranges hold len elements; the copy synchronises with prior work.
                Cudart::ok(
                    unsafe {
                        (self.rt.memcpy)(
                            host.as_mut_ptr() as *mut c_void,
                            self.ptr as *const c_void,
                            self.len * size_of::<T>(),
                            D2H,
                        )
                    },
                    "cudaMemcpy",
                );
            }
        }
        fn view(&self, shape: &[usize]) -> mhc::Result<TensorRef<'_, T>> {
            // SAFETY: the buffer holds len elements of device 0 and lives as long as the view;
            // every call is followed by a synchronising cudaMemcpy/cudaDeviceSynchronize
            // before a buffer is freed or read on the host.
            unsafe { TensorRef::from_device_ptr(self.ptr, shape, 0) }
        }
        fn view_mut(&mut self, shape: &[usize]) -> mhc::Result<TensorMut<'_, T>> {
            // SAFETY: as in view; `&mut self` keeps the view unique.
            unsafe { TensorMut::from_device_ptr(self.ptr, shape, 0) }
        }
    }

    impl<T> Drop for DevBuf<'_, T> {
        fn drop(&mut self) {
            // SAFETY: allocated by cudaMalloc; all work using it has been synchronised.
            unsafe { (self.rt.free)(self.ptr as *mut c_void) };
        }
    }

    pub fn run(args: &Args) -> mhc::Result<()> {
        let rt = Cudart::load();
        let (t, h) = (args.tokens, args.hidden);
        let (s_count, k) = (2 * args.layers, 4 * h);
        let inp = inputs(args);
        let dev_w: Vec<_> = inp
            .subs
            .iter()
            .map(|s| {
                (
                    DevBuf::upload(&rt, &s.fn_),
                    DevBuf::upload(&rt, &s.scale),
                    DevBuf::upload(&rt, &s.base),
                )
            })
            .collect();
        let hfn = DevBuf::upload(&rt, &inp.head_fn);
        let hscale = DevBuf::upload(&rt, &inp.head_scale);
        let hbase = DevBuf::upload(&rt, &inp.head_base);

        let ctx = Context::new(Backend::Cuda { device: 0 })?;
        let params = Params::default();
        let ws_bytes = ctx.max_workspace_size(&params, t, h)?;
        let ws_buf = DevBuf::<f32>::new(&rt, ws_bytes.div_ceil(4));
        // SAFETY: ws_bytes of device memory (cudaMalloc aligns to 256), used only by the calls
        // below on the default stream, freed after the final synchronisation.
        let mut ws = unsafe { Workspace::from_device_ptr(ws_buf.ptr as *mut c_void, ws_bytes) };

        let weights: Vec<Weights> = dev_w
            .iter()
            .map(|(f, s, b)| {
                Ok(Weights::new(
                    f.view(&[24, k])?,
                    s.view(&[3])?,
                    b.view(&[24])?,
                ))
            })
            .collect::<mhc::Result<_>>()?;
        let head = HeadWeights::new(hfn.view(&[4, k])?, hscale.view(&[1])?, hbase.view(&[4])?);

        let mut res = [
            DevBuf::upload(&rt, &inp.residual),
            DevBuf::<Bf16>::new(&rt, t * 4 * h),
        ];
        let mut post = [
            DevBuf::<f32>::new(&rt, t * 4),
            DevBuf::<f32>::new(&rt, t * 4),
        ];
        let mut comb = [
            DevBuf::<f32>::new(&rt, t * 16),
            DevBuf::<f32>::new(&rt, t * 16),
        ];
        let mut li = [
            DevBuf::<Bf16>::new(&rt, t * h),
            DevBuf::<Bf16>::new(&rt, t * h),
        ];
        let y = DevBuf::<Bf16>::new(&rt, t * h);
        let mut out = DevBuf::<Bf16>::new(&rt, t * h);
        let (mut h_li, mut h_y) = (vec![Bf16::ZERO; t * h], vec![Bf16::ZERO; t * h]);
        let stream = Stream::default();
        let mut cur = 0;

        let t0 = Instant::now();
        let mut t_layer = t0;
        if s_count > 0 {
            let [p0, _] = &mut post;
            let [c0, _] = &mut comb;
            let [l0, _] = &mut li;
            ctx.hc_pre(
                &params,
                &weights[0],
                &res[0].view(&[t, 4, h])?,
                &mut p0.view_mut(&[t, 4])?,
                &mut c0.view_mut(&[t, 4, 4])?,
                &mut l0.view_mut(&[t, h])?,
                Some(&mut ws),
                stream,
            )?;
        }
        for s in 0..s_count {
            li[cur].load(&mut h_li);
            stand_in_sublayer(&h_li, &inp.subs[s].gain, &mut h_y);
            y.store(&h_y);
            let nxt = 1 - cur;
            let (rc, rn) = pair(&mut res, cur);
            let (pc, pn) = pair(&mut post, cur);
            let (cc, cn) = pair(&mut comb, cur);
            let (_, ln) = pair(&mut li, cur);
            let x = y.view(&[t, h])?;
            if s + 1 < s_count {
                ctx.hc_post_pre(
                    &params,
                    &weights[s + 1],
                    &x,
                    &rc.view(&[t, 4, h])?,
                    &pc.view(&[t, 4])?,
                    &cc.view(&[t, 4, 4])?,
                    &mut rn.view_mut(&[t, 4, h])?,
                    &mut pn.view_mut(&[t, 4])?,
                    &mut cn.view_mut(&[t, 4, 4])?,
                    &mut ln.view_mut(&[t, h])?,
                    Some(&mut ws),
                    stream,
                )?;
            } else {
                ctx.hc_post(
                    &x,
                    &rc.view(&[t, 4, h])?,
                    &pc.view(&[t, 4])?,
                    &cc.view(&[t, 4, 4])?,
                    &mut rn.view_mut(&[t, 4, h])?,
                    stream,
                )?;
            }
            cur = nxt;
            if s % 2 == 1 {
                // SAFETY: no arguments.
                Cudart::ok(unsafe { (rt.sync)() }, "cudaDeviceSynchronize");
                print_layer_time(s, &mut t_layer);
            }
        }
        ctx.hc_head(
            &params,
            &head,
            &res[cur].view(&[t, 4, h])?,
            &mut out.view_mut(&[t, h])?,
            Some(&mut ws),
            stream,
        )?;
        // SAFETY: no arguments.
        Cudart::ok(unsafe { (rt.sync)() }, "cudaDeviceSynchronize");
        print_stage(args, "cuda", t0);
        let (mut h_out, mut h_res) = (vec![Bf16::ZERO; t * h], vec![Bf16::ZERO; t * 4 * h]);
        out.load(&mut h_out);
        res[cur].load(&mut h_res);
        print_checksum(&h_out, &h_res);
        Ok(())
    }

    /// (current, next) of a pair of buffers.
    fn pair<T>(v: &mut [T; 2], cur: usize) -> (&mut T, &mut T) {
        let [a, b] = v;
        if cur == 0 {
            (a, b)
        } else {
            (b, a)
        }
    }
}
