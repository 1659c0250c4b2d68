//! Workspaces, streams and the operator ids of the workspace query.
use std::ffi::c_void;
use std::marker::PhantomData;

use mhc_sys as sys;

/// An operator, for [`Context::workspace_size`](crate::Context::workspace_size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `hc_pre` (`MHC_OP_HC_PRE`).
    HcPre,
    /// The fused boundary `hc_post_pre` (`MHC_OP_HC_POST_PRE`).
    HcPostPre,
    /// `hc_head` (`MHC_OP_HC_HEAD`).
    HcHead,
    /// `hc_post` (`MHC_OP_HC_POST`; always 0 bytes).
    HcPost,
}

impl Op {
    /// Every operator, e.g. to size one workspace for all of them.
    pub const ALL: [Op; 4] = [Op::HcPre, Op::HcPostPre, Op::HcHead, Op::HcPost];

    /// The `MHC_OP_*` value.
    pub fn to_raw(self) -> i32 {
        match self {
            Op::HcPre => sys::MHC_OP_HC_PRE,
            Op::HcPostPre => sys::MHC_OP_HC_POST_PRE,
            Op::HcHead => sys::MHC_OP_HC_HEAD,
            Op::HcPost => sys::MHC_OP_HC_POST,
        }
    }
}

#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Chunk([u8; 16]);

enum Memory {
    Host(Vec<Chunk>, usize),
    Device(*mut c_void, usize),
}

/// Scratch memory of an operator call (`workspace`, `workspace_bytes` of the C API), sized by
/// [`Context::workspace_size`](crate::Context::workspace_size). The CPU backend needs none
/// (pass `None`); the CUDA backend needs device memory.
///
/// A workspace is taken as `&mut`, so two calls never use it at the same time on the host.
pub struct Workspace<'a> {
    memory: Memory,
    _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: host workspaces own their Vec; device workspaces are an address whose validity the
// unsafe constructor's caller vouched for. Calls take `&mut Workspace`.
unsafe impl Send for Workspace<'_> {}
unsafe impl Sync for Workspace<'_> {}

impl Workspace<'static> {
    /// A zeroed, 16-byte aligned host workspace of `bytes` bytes (for the CPU backend; the
    /// CUDA backend rejects host workspaces with [`Status::DeviceMismatch`](crate::Status)).
    pub fn host(bytes: usize) -> Self {
        let chunks = bytes.div_ceil(16);
        Workspace {
            memory: Memory::Host(vec![Chunk([0; 16]); chunks], bytes),
            _borrow: PhantomData,
        }
    }
}

impl<'a> Workspace<'a> {
    /// A workspace in CUDA device memory of the context's device.
    ///
    /// # Safety
    /// `ptr` must point to `bytes` bytes of device memory of the context's device, 16-byte
    /// aligned, valid for `'a` and until the stream work of every call that used it has
    /// completed, and not used by anything else meanwhile (calls on one stream may reuse it).
    pub unsafe fn from_device_ptr(ptr: *mut c_void, bytes: usize) -> Self {
        Workspace {
            memory: Memory::Device(ptr, bytes),
            _borrow: PhantomData,
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        match self.memory {
            Memory::Host(_, n) | Memory::Device(_, n) => n,
        }
    }

    /// Whether the size is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is host memory ([`Workspace::host`]).
    pub fn is_host(&self) -> bool {
        matches!(self.memory, Memory::Host(..))
    }

    /// Pointer and size for the C call (NULL for an empty workspace).
    pub(crate) fn raw(&mut self) -> (*mut c_void, usize) {
        match &mut self.memory {
            Memory::Host(v, n) => {
                if *n == 0 {
                    (std::ptr::null_mut(), 0)
                } else {
                    (v.as_mut_ptr() as *mut c_void, *n)
                }
            }
            Memory::Device(p, n) => (*p, *n),
        }
    }
}

impl std::fmt::Debug for Workspace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("host", &self.is_host())
            .field("bytes", &self.len())
            .finish()
    }
}

/// A CUDA stream (`cudaStream_t`, i.e. `struct CUstream_st *`). [`Stream::default`] is NULL, the
/// legacy default stream. The CPU backend ignores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stream(*mut sys::CUstream_st);

// SAFETY: a CUDA stream handle may be used from any thread.
unsafe impl Send for Stream {}
unsafe impl Sync for Stream {}

impl Default for Stream {
    fn default() -> Self {
        Stream::NULL
    }
}

impl Stream {
    /// The legacy default stream (NULL).
    pub const NULL: Stream = Stream(std::ptr::null_mut());

    /// A stream from a `cudaStream_t` / `CUstream` handle (e.g. cudarc's `cu_stream()`,
    /// torch's `cuda_stream`). `cudaStreamPerThread` (2) is accepted.
    ///
    /// # Safety
    /// The handle must be a valid stream of the context's device (or NULL / a special stream
    /// handle) for as long as calls are made with it.
    pub unsafe fn from_raw(handle: *mut c_void) -> Self {
        Stream(handle as *mut sys::CUstream_st)
    }

    /// The raw handle.
    pub fn as_raw(self) -> *mut c_void {
        self.0 as *mut c_void
    }

    pub(crate) fn raw(self) -> *mut sys::CUstream_st {
        self.0
    }
}
