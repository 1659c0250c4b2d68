/*
 * SWIG interface of the low-level Python extension module `mhc._mhc`.
 *
 * The module is generated FROM the public header: every `mhc_*` function and every `MHC_*`
 * constant of mhc/mhc.h and mhc/version.h is wrapped as it is declared there, so a change of
 * the header changes (or breaks) the binding; bindings/python/tests/test_header.py checks that
 * each of them is reachable. Only the conversions of C types that Python has no natural form
 * for are written by hand, as typemaps:
 *
 *   const DLTensor *        a descriptor tuple
 *                             (data, device_type, device_id, code, bits, lanes,
 *                              shape, strides_or_None, byte_offset)
 *                           with `data` an integer address and strides in elements, or a
 *                           DLPack capsule ("dltensor", not consumed), or None (NULL).
 *                           The DLTensor and its shape/strides live on the C stack for the
 *                           duration of the call only (the library never keeps them).
 *   const mhc_hc_weights *  a tuple (fn, scale, base[, norm_weight]) of tensors as above,
 *                           norm_weight None or absent = no fused RMSNorm; or an
 *                           mhc_hc_weights proxy; or None.
 *   const mhc_hc_params *   a tuple (hc_mult, sinkhorn_iters, rms_eps, pre_eps, sinkhorn_eps,
 *                           post_mult, norm_eps, flags), size and version filled in from this
 *                           header; or an mhc_hc_params proxy (e.g. MHC_HC_PARAMS_INIT());
 *                           or None.
 *   const mhc_context_config *  a tuple (backend, device_id, flags); or a proxy; or None.
 *   struct CUstream_st *    an integer handle (cudaStream_t value) or None (NULL).
 *   void *workspace         an integer address or None.
 *   out-parameters          mhc_context **out, size_t *out_bytes, int32_t *backend,
 *                           int32_t *device_id are returned after the status:
 *                           status, ctx = mhc_context_create(cfg).
 *
 * The brace initialisers MHC_CONTEXT_CONFIG_INIT and MHC_HC_PARAMS_INIT become functions of
 * the same name returning a filled struct. The operator entry points release the GIL.
 */
%module(package="mhc") _mhc
/* Generated with `swig -python -builtin -interface _mhc_ext` (bindings/python/build_ext.sh and
 * setup.py): the compiled module is mhc._mhc_ext, and the generated mhc/_mhc.py re-exports it
 * as mhc._mhc. */

%{
#include <string.h>
#include "mhc/mhc.h"

#define MHC_PY_MAX_NDIM 8

/* Storage of one DLTensor converted from Python: lives in the wrapper's stack frame. */
typedef struct mhc_py_tensor_slot {
  DLTensor t;
  int64_t shape[MHC_PY_MAX_NDIM];
  int64_t strides[MHC_PY_MAX_NDIM];
} mhc_py_tensor_slot;

typedef struct mhc_py_weights_slot {
  mhc_hc_weights w;
  mhc_py_tensor_slot s[4];
} mhc_py_weights_slot;

static int mhc_py_fail(PyObject *type, const char *what, const char *detail) {
  PyErr_Format(type, "%s: %s", what, detail);
  return -1;
}

/* Reads a Python int into [lo, hi]; -1 with an exception set on failure. */
static int mhc_py_int(PyObject *o, long long lo, long long hi, long long *out, const char *what,
                      const char *field) {
  long long v;
  if (!PyLong_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s: %s must be an int, got %s", what, field,
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  v = PyLong_AsLongLong(o);
  if (v == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    PyErr_Format(PyExc_OverflowError, "%s: %s is out of range", what, field);
    return -1;
  }
  if (v < lo || v > hi) {
    PyErr_Format(PyExc_OverflowError, "%s: %s = %lld is out of range [%lld, %lld]", what, field,
                 v, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

static int mhc_py_uint64(PyObject *o, unsigned long long *out, const char *what,
                         const char *field) {
  if (!PyLong_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s: %s must be an int, got %s", what, field,
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  *out = PyLong_AsUnsignedLongLong(o);
  if (*out == (unsigned long long)-1 && PyErr_Occurred()) {
    PyErr_Clear();
    PyErr_Format(PyExc_OverflowError, "%s: %s must be an unsigned 64-bit value", what, field);
    return -1;
  }
  return 0;
}

static int mhc_py_int_seq(PyObject *o, int64_t *dst, Py_ssize_t n, const char *what,
                          const char *field) {
  Py_ssize_t i;
  for (i = 0; i < n; ++i) {
    long long v;
    PyObject *item = PySequence_Fast_GET_ITEM(o, i);
    if (mhc_py_int(item, INT64_MIN, INT64_MAX, &v, what, field) != 0) return -1;
    dst[i] = (int64_t)v;
  }
  return 0;
}

/* Converts a descriptor tuple or a DLPack capsule into slot->t. Returns 0, or -1 with a
 * Python exception set. */
static int mhc_py_tensor(PyObject *o, mhc_py_tensor_slot *slot, const char *what) {
  DLTensor *t = &slot->t;
  memset(t, 0, sizeof *t);
  if (PyCapsule_CheckExact(o)) {
    DLManagedTensor *m;
    if (!PyCapsule_IsValid(o, "dltensor")) {
      const char *name = PyCapsule_GetName(o);
      PyErr_Clear();
      PyErr_Format(PyExc_ValueError,
                   "%s: expected a DLPack capsule named \"dltensor\", got \"%s\" (a capsule can "
                   "be consumed once only)",
                   what, name ? name : "(null)");
      return -1;
    }
    m = (DLManagedTensor *)PyCapsule_GetPointer(o, "dltensor");
    if (m == NULL) return -1;
    *t = m->dl_tensor; /* shape/strides stay owned by the producer, alive with the capsule */
    return 0;
  }
  if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) != 9)
    return mhc_py_fail(PyExc_TypeError, what,
                       "expected None, a DLPack capsule or a 9-tuple (data, device_type, "
                       "device_id, code, bits, lanes, shape, strides, byte_offset)");
  {
    PyObject *data = PyTuple_GET_ITEM(o, 0), *shape = PyTuple_GET_ITEM(o, 6),
             *strides = PyTuple_GET_ITEM(o, 7);
    long long v;
    unsigned long long u;
    Py_ssize_t ndim;
    if (data == Py_None) {
      t->data = NULL;
    } else {
      if (mhc_py_uint64(data, &u, what, "data") != 0) return -1;
      t->data = (void *)(uintptr_t)u;
    }
    if (mhc_py_int(PyTuple_GET_ITEM(o, 1), INT32_MIN, INT32_MAX, &v, what, "device_type")) return -1;
    t->device.device_type = (DLDeviceType)v;
    if (mhc_py_int(PyTuple_GET_ITEM(o, 2), INT32_MIN, INT32_MAX, &v, what, "device_id")) return -1;
    t->device.device_id = (int32_t)v;
    if (mhc_py_int(PyTuple_GET_ITEM(o, 3), 0, 255, &v, what, "dtype code")) return -1;
    t->dtype.code = (uint8_t)v;
    if (mhc_py_int(PyTuple_GET_ITEM(o, 4), 0, 255, &v, what, "dtype bits")) return -1;
    t->dtype.bits = (uint8_t)v;
    if (mhc_py_int(PyTuple_GET_ITEM(o, 5), 0, 65535, &v, what, "dtype lanes")) return -1;
    t->dtype.lanes = (uint16_t)v;
    if (!PyTuple_Check(shape) && !PyList_Check(shape))
      return mhc_py_fail(PyExc_TypeError, what, "shape must be a tuple of ints");
    ndim = PySequence_Fast_GET_SIZE(shape);
    if (ndim > MHC_PY_MAX_NDIM)
      return mhc_py_fail(PyExc_ValueError, what, "more than 8 dimensions");
    t->ndim = (int32_t)ndim;
    if (mhc_py_int_seq(shape, slot->shape, ndim, what, "shape")) return -1;
    t->shape = slot->shape;
    if (strides == Py_None) {
      t->strides = NULL;
    } else {
      if (!PyTuple_Check(strides) && !PyList_Check(strides))
        return mhc_py_fail(PyExc_TypeError, what, "strides must be None or a tuple of ints");
      if (PySequence_Fast_GET_SIZE(strides) != ndim)
        return mhc_py_fail(PyExc_ValueError, what, "strides and shape differ in length");
      if (mhc_py_int_seq(strides, slot->strides, ndim, what, "strides")) return -1;
      t->strides = slot->strides;
    }
    if (mhc_py_uint64(PyTuple_GET_ITEM(o, 8), &u, what, "byte_offset") != 0) return -1;
    t->byte_offset = (uint64_t)u;
  }
  return 0;
}

/* Converts a (fn, scale, base[, norm_weight]) tuple. */
static int mhc_py_weights(PyObject *o, mhc_py_weights_slot *slot, const char *what) {
  Py_ssize_t n;
  static const char *names[4] = {"fn", "scale", "base", "norm_weight"};
  const DLTensor **dst[4];
  int i;
  memset(&slot->w, 0, sizeof slot->w);
  dst[0] = &slot->w.fn;
  dst[1] = &slot->w.scale;
  dst[2] = &slot->w.base;
  dst[3] = &slot->w.norm_weight;
  n = PyTuple_GET_SIZE(o);
  if (n != 3 && n != 4)
    return mhc_py_fail(PyExc_TypeError, what, "expected a tuple (fn, scale, base[, norm_weight])");
  for (i = 0; i < n; ++i) {
    PyObject *item = PyTuple_GET_ITEM(o, i);
    if (item == Py_None) {
      *dst[i] = NULL;
      continue;
    }
    if (mhc_py_tensor(item, &slot->s[i], names[i]) != 0) return -1;
    *dst[i] = &slot->s[i].t;
  }
  return 0;
}

static int mhc_py_float(PyObject *o, float *out, const char *field) {
  double d = PyFloat_AsDouble(o);
  if (d == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "params: %s must be a number, got %s", field,
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  *out = (float)d;
  return 0;
}

static int mhc_py_params(PyObject *o, mhc_hc_params *p) {
  long long v;
  mhc_hc_params init = MHC_HC_PARAMS_INIT;
  *p = init;
  if (PyTuple_GET_SIZE(o) != 8)
    return mhc_py_fail(PyExc_TypeError, "params",
                       "expected a tuple (hc_mult, sinkhorn_iters, rms_eps, pre_eps, "
                       "sinkhorn_eps, post_mult, norm_eps, flags)");
  if (mhc_py_int(PyTuple_GET_ITEM(o, 0), INT32_MIN, INT32_MAX, &v, "params", "hc_mult")) return -1;
  p->hc_mult = (int32_t)v;
  if (mhc_py_int(PyTuple_GET_ITEM(o, 1), INT32_MIN, INT32_MAX, &v, "params", "sinkhorn_iters"))
    return -1;
  p->sinkhorn_iters = (int32_t)v;
  if (mhc_py_float(PyTuple_GET_ITEM(o, 2), &p->rms_eps, "rms_eps")) return -1;
  if (mhc_py_float(PyTuple_GET_ITEM(o, 3), &p->pre_eps, "pre_eps")) return -1;
  if (mhc_py_float(PyTuple_GET_ITEM(o, 4), &p->sinkhorn_eps, "sinkhorn_eps")) return -1;
  if (mhc_py_float(PyTuple_GET_ITEM(o, 5), &p->post_mult, "post_mult")) return -1;
  if (mhc_py_float(PyTuple_GET_ITEM(o, 6), &p->norm_eps, "norm_eps")) return -1;
  if (mhc_py_int(PyTuple_GET_ITEM(o, 7), 0, UINT32_MAX, &v, "params", "flags")) return -1;
  p->flags = (uint32_t)v;
  return 0;
}

static int mhc_py_config(PyObject *o, mhc_context_config *c) {
  long long v;
  mhc_context_config init = MHC_CONTEXT_CONFIG_INIT;
  *c = init;
  if (PyTuple_GET_SIZE(o) != 3)
    return mhc_py_fail(PyExc_TypeError, "cfg", "expected a tuple (backend, device_id, flags)");
  if (mhc_py_int(PyTuple_GET_ITEM(o, 0), INT32_MIN, INT32_MAX, &v, "cfg", "backend")) return -1;
  c->backend = (int32_t)v;
  if (mhc_py_int(PyTuple_GET_ITEM(o, 1), INT32_MIN, INT32_MAX, &v, "cfg", "device_id")) return -1;
  c->device_id = (int32_t)v;
  if (mhc_py_int(PyTuple_GET_ITEM(o, 2), 0, UINT32_MAX, &v, "cfg", "flags")) return -1;
  c->flags = (uint32_t)v;
  return 0;
}

static int mhc_py_address(PyObject *o, void **out, const char *what) {
  unsigned long long u;
  if (o == Py_None) {
    *out = NULL;
    return 0;
  }
  if (mhc_py_uint64(o, &u, what, "handle") != 0) return -1;
  *out = (void *)(uintptr_t)u;
  return 0;
}
%}

%include <stdint.i>

/* ---- tensors ---------------------------------------------------------------------------- */
%typemap(in) const DLTensor * (mhc_py_tensor_slot slot) {
  if ($input == Py_None) {
    $1 = NULL;
  } else {
    if (mhc_py_tensor($input, &slot, "$1_name") != 0) SWIG_fail;
    $1 = &slot.t;
  }
}
/* The weights struct holds borrowed pointers: it cannot be filled from Python (the tensors
 * would not outlive the setter). Pass a (fn, scale, base, norm_weight) tuple instead. */
%typemap(memberin) const DLTensor * {
  (void)$input;
  (void)&$1;
  SWIG_exception_fail(SWIG_AttributeError,
                      "mhc_hc_weights members are read-only from Python: pass a tuple "
                      "(fn, scale, base, norm_weight) where a const mhc_hc_weights * is expected");
}

%typemap(in) const mhc_hc_weights * (mhc_py_weights_slot wslot, void *argp = 0, int res = 0) {
  if ($input == Py_None) {
    $1 = NULL;
  } else if (PyTuple_Check($input)) {
    if (mhc_py_weights($input, &wslot, "$1_name") != 0) SWIG_fail;
    $1 = &wslot.w;
  } else {
    res = SWIG_ConvertPtr($input, &argp, $descriptor(mhc_hc_weights *), 0);
    if (!SWIG_IsOK(res))
      SWIG_exception_fail(SWIG_TypeError, "$1_name: expected a tuple (fn, scale, base, norm_weight)");
    $1 = (mhc_hc_weights *)argp;
  }
}

/* ---- parameter structs ---------------------------------------------------------------------- */
%typemap(in) const mhc_hc_params * (mhc_hc_params ptmp, void *argp = 0, int res = 0) {
  if ($input == Py_None) {
    $1 = NULL;
  } else if (PyTuple_Check($input)) {
    if (mhc_py_params($input, &ptmp) != 0) SWIG_fail;
    $1 = &ptmp;
  } else {
    res = SWIG_ConvertPtr($input, &argp, $descriptor(mhc_hc_params *), 0);
    if (!SWIG_IsOK(res))
      SWIG_exception_fail(SWIG_TypeError, "$1_name: expected an 8-tuple or an mhc_hc_params");
    $1 = (mhc_hc_params *)argp;
  }
}

%typemap(in) const mhc_context_config * (mhc_context_config ctmp, void *argp = 0, int res = 0) {
  if ($input == Py_None) {
    $1 = NULL;
  } else if (PyTuple_Check($input)) {
    if (mhc_py_config($input, &ctmp) != 0) SWIG_fail;
    $1 = &ctmp;
  } else {
    res = SWIG_ConvertPtr($input, &argp, $descriptor(mhc_context_config *), 0);
    if (!SWIG_IsOK(res))
      SWIG_exception_fail(SWIG_TypeError, "$1_name: expected a 3-tuple or an mhc_context_config");
    $1 = (mhc_context_config *)argp;
  }
}

/* ---- raw handles ---------------------------------------------------------------------------- */
%typemap(in) struct CUstream_st * (void *ptr = 0) {
  if (mhc_py_address($input, &ptr, "stream") != 0) SWIG_fail;
  $1 = (struct CUstream_st *)ptr;
}
%typemap(in) void *workspace {
  if (mhc_py_address($input, (void **)&$1, "workspace") != 0) SWIG_fail;
}

/* ---- out-parameters ------------------------------------------------------------------------- */
%typemap(in, numinputs=0) mhc_context **out (mhc_context *tmp = NULL) { $1 = &tmp; }
%typemap(argout) mhc_context **out {
  $result = SWIG_Python_AppendOutput($result, SWIG_NewPointerObj(*$1, $descriptor(mhc_context *), 0));
}
%typemap(in, numinputs=0) size_t *out_bytes (size_t tmp = 0) { $1 = &tmp; }
%typemap(argout) size_t *out_bytes {
  $result = SWIG_Python_AppendOutput($result, PyLong_FromSize_t(*$1));
}
%typemap(in, numinputs=0) int32_t *backend (int32_t tmp = 0), int32_t *device_id (int32_t tmp = 0) {
  $1 = &tmp;
}
%typemap(argout) int32_t *backend, int32_t *device_id {
  $result = SWIG_Python_AppendOutput($result, PyLong_FromLong((long)*$1));
}

/* ---- the GIL is released while the library works ------------------------------------------ */
%define MHC_PY_NOGIL(fn)
%exception fn {
  Py_BEGIN_ALLOW_THREADS
  $action
  Py_END_ALLOW_THREADS
}
%enddef
MHC_PY_NOGIL(mhc_hc_pre)
MHC_PY_NOGIL(mhc_hc_post)
MHC_PY_NOGIL(mhc_hc_post_pre)
MHC_PY_NOGIL(mhc_hc_head)
MHC_PY_NOGIL(mhc_context_create)
MHC_PY_NOGIL(mhc_context_destroy)

/* The brace initialisers become functions of the same name (defined below); the renames come
 * before the header, whose macros would otherwise expand these names. */
%rename(MHC_HC_PARAMS_INIT) mhc_py_hc_params_init;
%rename(MHC_CONTEXT_CONFIG_INIT) mhc_py_context_config_init;

/* ---- the header itself ---------------------------------------------------------------------- */
%include "mhc/version.h"
%include "mhc/mhc.h"

/* ---- brace initialisers, as functions of the same name (renamed above) ------------------- */
%inline %{
static mhc_hc_params mhc_py_hc_params_init(void) {
  mhc_hc_params p = MHC_HC_PARAMS_INIT;
  return p;
}
static mhc_context_config mhc_py_context_config_init(void) {
  mhc_context_config c = MHC_CONTEXT_CONFIG_INIT;
  return c;
}
%}

/* ---- helpers of the Python package (not part of the C API) --------------------------------- */
%rename(dlpack_describe) mhc_py_dlpack_describe;
%rename(max_ndim) mhc_py_max_ndim;
%inline %{
/* The descriptor tuple of a DLPack capsule ("dltensor"), without consuming it:
 * (data, device_type, device_id, code, bits, lanes, shape, strides_or_None, byte_offset). */
static PyObject *mhc_py_dlpack_describe(PyObject *capsule) {
  DLManagedTensor *m;
  const DLTensor *t;
  PyObject *shape, *strides;
  int i;
  if (!PyCapsule_CheckExact(capsule) || !PyCapsule_IsValid(capsule, "dltensor")) {
    PyErr_SetString(PyExc_TypeError,
                    "expected an unconsumed DLPack capsule named \"dltensor\"");
    return NULL;
  }
  m = (DLManagedTensor *)PyCapsule_GetPointer(capsule, "dltensor");
  if (m == NULL) return NULL;
  t = &m->dl_tensor;
  if (t->ndim < 0 || t->ndim > 64 || (t->ndim > 0 && t->shape == NULL)) {
    PyErr_SetString(PyExc_ValueError, "DLPack capsule: ndim out of range or shape is NULL");
    return NULL;
  }
  shape = PyTuple_New(t->ndim);
  if (shape == NULL) return NULL;
  for (i = 0; i < t->ndim; ++i) PyTuple_SET_ITEM(shape, i, PyLong_FromLongLong(t->shape[i]));
  if (t->strides == NULL) {
    Py_INCREF(Py_None);
    strides = Py_None;
  } else {
    strides = PyTuple_New(t->ndim);
    if (strides == NULL) {
      Py_DECREF(shape);
      return NULL;
    }
    for (i = 0; i < t->ndim; ++i)
      PyTuple_SET_ITEM(strides, i, PyLong_FromLongLong(t->strides[i]));
  }
  return Py_BuildValue("(KiiiiiNNK)", (unsigned long long)(uintptr_t)t->data,
                       (int)t->device.device_type, (int)t->device.device_id, (int)t->dtype.code,
                       (int)t->dtype.bits, (int)t->dtype.lanes, shape, strides,
                       (unsigned long long)t->byte_offset);
}
static int mhc_py_max_ndim(void) { return MHC_PY_MAX_NDIM; }
%}
