//! Borrowed tensor views: what the operators take instead of raw `DLTensor`s.
use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;

use mhc_sys as sys;

use crate::{Bf16, Error, Result, Status};

/// The most dimensions a view can have (the operators use at most 3).
pub const MAX_NDIM: usize = 4;

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Bf16 {}
    impl Sealed for f32 {}
}

/// An element type the library takes: [`Bf16`] (activations) or `f32` (mixes and weights).
///
/// Sealed: the dtype of every operator argument is fixed by the operator's signature, so a
/// wrong dtype is a compile error, never a run-time one.
pub trait Element: sealed::Sealed + Copy + Send + Sync + 'static {
    /// DLPack type code (`kDLBfloat` or `kDLFloat`).
    #[doc(hidden)]
    const DL_CODE: u8;
    /// Bits per element.
    #[doc(hidden)]
    const DL_BITS: u8;
    /// Name of the dtype.
    const NAME: &'static str;
}

impl Element for Bf16 {
    const DL_CODE: u8 = sys::kDLBfloat as u8;
    const DL_BITS: u8 = 16;
    const NAME: &'static str = "bfloat16";
}

impl Element for f32 {
    const DL_CODE: u8 = sys::kDLFloat as u8;
    const DL_BITS: u8 = 32;
    const NAME: &'static str = "float32";
}

/// Where a view's memory lives (the `DLDevice` handed to the library).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host memory (`kDLCPU`): what the CPU backend takes. Views built from slices are here.
    Cpu,
    /// Memory of a CUDA device (`kDLCUDA`, device ordinal).
    Cuda(i32),
    /// Page-locked host memory from `cudaMallocHost` (`kDLCUDAHost`).
    CudaHost,
    /// Managed memory from `cudaMallocManaged` (`kDLCUDAManaged`).
    CudaManaged,
}

impl Device {
    fn to_dl(self) -> sys::DLDevice {
        let (device_type, device_id) = match self {
            Device::Cpu => (sys::kDLCPU, 0),
            Device::Cuda(id) => (sys::kDLCUDA, id),
            Device::CudaHost => (sys::kDLCUDAHost, 0),
            Device::CudaManaged => (sys::kDLCUDAManaged, 0),
        };
        sys::DLDevice {
            device_type,
            device_id,
        }
    }
}

/// Pointer, shape and device of a view, with the shape stored inline so that a `DLTensor`
/// can point at it for the duration of a call.
#[derive(Clone, Copy)]
struct RawView {
    ptr: *mut c_void,
    shape: [i64; MAX_NDIM],
    ndim: usize,
    numel: usize,
    device: Device,
}

impl RawView {
    /// Checks the shape: at most MAX_NDIM dimensions, element count and byte size without
    /// overflow (in usize and in i64), and, for slices, exactly `len` elements.
    fn new<T: Element>(
        ptr: *mut c_void,
        shape: &[usize],
        device: Device,
        len: Option<usize>,
        what: &str,
    ) -> Result<RawView> {
        let shape_str = || format!("{shape:?}");
        if shape.len() > MAX_NDIM {
            return Err(Error::new(
                Status::InvalidArgument,
                format!(
                    "{what}: shape {} has {} dimensions, at most {MAX_NDIM} are supported",
                    shape_str(),
                    shape.len()
                ),
            ));
        }
        let mut dims = [0i64; MAX_NDIM];
        let mut numel: usize = 1;
        for (i, &d) in shape.iter().enumerate() {
            dims[i] = i64::try_from(d).map_err(|_| too_large(what, shape))?;
            numel = numel.checked_mul(d).ok_or_else(|| too_large(what, shape))?;
        }
        match numel.checked_mul(std::mem::size_of::<T>()) {
            Some(bytes) if bytes <= isize::MAX as usize => {}
            _ => return Err(too_large(what, shape)),
        }
        if let Some(len) = len {
            if len != numel {
                return Err(Error::new(
                    Status::InvalidArgument,
                    format!(
                        "{what}: shape {} has {numel} elements, but the slice has {len}",
                        shape_str()
                    ),
                ));
            }
        }
        Ok(RawView {
            ptr,
            shape: dims,
            ndim: shape.len(),
            numel,
            device,
        })
    }

    /// The DLTensor describing this view. It points into `self.shape`: use it only while
    /// `self` stays where it is (i.e. build it from a reference to the view, within the call).
    fn dl<T: Element>(&self) -> sys::DLTensor {
        sys::DLTensor {
            data: self.ptr,
            device: self.device.to_dl(),
            ndim: self.ndim as i32,
            dtype: sys::DLDataType {
                code: T::DL_CODE,
                bits: T::DL_BITS,
                lanes: 1,
            },
            shape: self.shape.as_ptr() as *mut i64,
            strides: std::ptr::null_mut(),
            byte_offset: 0,
        }
    }

    /// The shape: the first `ndim` entries of `shape`.
    fn shape(&self) -> &[i64] {
        &self.shape[..self.ndim]
    }

    fn fmt(&self, f: &mut fmt::Formatter<'_>, kind: &str, dtype: &str) -> fmt::Result {
        f.debug_struct(kind)
            .field("dtype", &dtype)
            .field("shape", &self.shape())
            .field("device", &self.device)
            .field("ptr", &self.ptr)
            .finish()
    }
}

fn too_large(what: &str, shape: &[usize]) -> Error {
    Error::new(
        Status::InvalidArgument,
        format!("{what}: shape {shape:?} is too large"),
    )
}

/// A read-only, dense, row-major view of `T` elements with a shape, borrowed for `'a`.
///
/// Built safely from a host slice ([`TensorRef::new`]) or, for the CUDA backend, from a
/// device pointer ([`TensorRef::from_device_ptr`], `unsafe`). The library checks every shape
/// against the operator's contract; this type only guarantees that the memory it describes is
/// there.
#[derive(Clone, Copy)]
pub struct TensorRef<'a, T: Element> {
    raw: RawView,
    _borrow: PhantomData<&'a [T]>,
}

/// A writable, dense, row-major view of `T` elements with a shape, mutably borrowed for `'a`:
/// the operators' outputs. Because it holds a `&mut` borrow of its slice, an output can never
/// alias an input built from the same memory.
pub struct TensorMut<'a, T: Element> {
    raw: RawView,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: a TensorRef is a shared borrow of `T: Sync` data (or, for raw-pointer views, an
// address whose validity the unsafe constructor's caller vouched for); the library only reads
// through it.
unsafe impl<T: Element> Send for TensorRef<'_, T> {}
unsafe impl<T: Element> Sync for TensorRef<'_, T> {}
// SAFETY: a TensorMut is a unique borrow, like `&mut [T]` with `T: Send + Sync`.
unsafe impl<T: Element> Send for TensorMut<'_, T> {}
unsafe impl<T: Element> Sync for TensorMut<'_, T> {}

impl<'a, T: Element> TensorRef<'a, T> {
    /// A view of a host slice with the given shape (row-major). Fails with
    /// [`Status::InvalidArgument`] unless `data.len()` is exactly the product of `shape`, or if
    /// the shape has more than [`MAX_NDIM`] dimensions.
    ///
    /// Host views are `kDLCPU` tensors: the CPU backend takes them; the CUDA backend rejects
    /// them with [`Status::DeviceMismatch`].
    pub fn new(data: &'a [T], shape: &[usize]) -> Result<Self> {
        let raw = RawView::new::<T>(
            data.as_ptr() as *mut c_void,
            shape,
            Device::Cpu,
            Some(data.len()),
            "TensorRef::new",
        )?;
        Ok(TensorRef {
            raw,
            _borrow: PhantomData,
        })
    }

    /// A view of CUDA device memory of device `device_id` (e.g. from `cudaMalloc`, cudarc or
    /// torch), for the CUDA backend.
    ///
    /// # Safety
    /// This is the one place where the caller vouches for the memory instead of the borrow
    /// checker. `ptr` must point to at least `product(shape)` elements of `T`, aligned to
    /// `size_of::<T>()`, in memory of device `device_id` (or be anything, e.g. null, when the
    /// shape has no elements). The memory must stay valid, and not be written by anyone else,
    /// for `'a` **and** until the stream work of every call that used the view has completed
    /// (CUDA calls are asynchronous). It must not overlap a [`TensorMut`] of the same call
    /// (the library also rejects overlaps it can see).
    pub unsafe fn from_device_ptr(ptr: *const T, shape: &[usize], device_id: i32) -> Result<Self> {
        Self::from_raw_parts(ptr, shape, Device::Cuda(device_id))
    }

    /// A view of memory on any [`Device`] (e.g. `CudaHost` or `CudaManaged` memory).
    ///
    /// # Safety
    /// As [`TensorRef::from_device_ptr`], with the memory living where `device` says.
    pub unsafe fn from_raw_parts(ptr: *const T, shape: &[usize], device: Device) -> Result<Self> {
        let raw = RawView::new::<T>(
            ptr as *mut c_void,
            shape,
            device,
            None,
            "TensorRef::from_raw_parts",
        )?;
        Ok(TensorRef {
            raw,
            _borrow: PhantomData,
        })
    }

    /// The shape.
    pub fn shape(&self) -> &[i64] {
        self.raw.shape()
    }

    /// Number of elements (product of the shape).
    pub fn numel(&self) -> usize {
        self.raw.numel
    }

    /// Where the memory lives.
    pub fn device(&self) -> Device {
        self.raw.device
    }

    /// The data pointer.
    pub fn as_ptr(&self) -> *const T {
        self.raw.ptr as *const T
    }

    /// The `DLTensor` of this view; it borrows `self`'s shape, so keep it no longer than the
    /// reference it was built from.
    pub(crate) fn dl(&self) -> sys::DLTensor {
        self.raw.dl::<T>()
    }
}

impl<'a, T: Element> TensorMut<'a, T> {
    /// A writable view of a host slice with the given shape (row-major). Fails with
    /// [`Status::InvalidArgument`] unless `data.len()` is exactly the product of `shape`.
    pub fn new(data: &'a mut [T], shape: &[usize]) -> Result<Self> {
        let raw = RawView::new::<T>(
            data.as_mut_ptr() as *mut c_void,
            shape,
            Device::Cpu,
            Some(data.len()),
            "TensorMut::new",
        )?;
        Ok(TensorMut {
            raw,
            _borrow: PhantomData,
        })
    }

    /// A writable view of CUDA device memory of device `device_id`.
    ///
    /// # Safety
    /// As [`TensorRef::from_device_ptr`], and in addition nobody else may read or write the
    /// memory until the stream work of every call that wrote it has completed.
    pub unsafe fn from_device_ptr(ptr: *mut T, shape: &[usize], device_id: i32) -> Result<Self> {
        Self::from_raw_parts(ptr, shape, Device::Cuda(device_id))
    }

    /// A writable view of memory on any [`Device`].
    ///
    /// # Safety
    /// As [`TensorMut::from_device_ptr`], with the memory living where `device` says.
    pub unsafe fn from_raw_parts(ptr: *mut T, shape: &[usize], device: Device) -> Result<Self> {
        let raw = RawView::new::<T>(
            ptr as *mut c_void,
            shape,
            device,
            None,
            "TensorMut::from_raw_parts",
        )?;
        Ok(TensorMut {
            raw,
            _borrow: PhantomData,
        })
    }

    /// A read-only view of the same memory, borrowing this one.
    pub fn view(&self) -> TensorRef<'_, T> {
        TensorRef {
            raw: self.raw,
            _borrow: PhantomData,
        }
    }

    /// A shorter-lived writable view of the same memory (a reborrow).
    pub fn reborrow(&mut self) -> TensorMut<'_, T> {
        TensorMut {
            raw: self.raw,
            _borrow: PhantomData,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[i64] {
        self.raw.shape()
    }

    /// Number of elements (product of the shape).
    pub fn numel(&self) -> usize {
        self.raw.numel
    }

    /// Where the memory lives.
    pub fn device(&self) -> Device {
        self.raw.device
    }

    /// The data pointer.
    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.raw.ptr as *mut T
    }

    /// See [`TensorRef::dl`]. Takes `&mut self`: the library writes through it.
    pub(crate) fn dl(&mut self) -> sys::DLTensor {
        self.raw.dl::<T>()
    }
}

impl<'a, T: Element> From<TensorMut<'a, T>> for TensorRef<'a, T> {
    fn from(t: TensorMut<'a, T>) -> Self {
        TensorRef {
            raw: t.raw,
            _borrow: PhantomData,
        }
    }
}

impl<T: Element> fmt::Debug for TensorRef<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f, "TensorRef", T::NAME)
    }
}

impl<T: Element> fmt::Debug for TensorMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f, "TensorMut", T::NAME)
    }
}
