package mhc

// capi.go is the only file of the package that talks to C. Everything else is plain Go.
//
// cgo pointer rules (https://pkg.go.dev/cmd/cgo#hdr-Passing_pointers) shape this file:
//
//   - Go may pass a Go pointer to C only if the memory it points to holds no Go pointers,
//     and Go may never store a Go pointer in C memory. A DLTensor holds its data pointer,
//     so neither a Go-allocated DLTensor (Go memory holding a Go pointer) nor a C-allocated
//     one filled from Go (a Go pointer in C memory) is allowed when the data is a Go slice.
//   - So Go passes each tensor as a pointer-free descriptor (mhcgo_tensor: dtype, device,
//     shape, and the address of non-Go memory as an integer) plus, as a separate call
//     argument, the Go data pointer of a host slice. Small C helpers below assemble the
//     DLTensors on the C stack for the duration of the call; the library keeps no pointer
//     after it returns (a documented guarantee of mhc.h), so nothing outlives the call.
//   - The error message of a failed call is thread-local in the library, and a goroutine
//     may move to another OS thread between two cgo calls, so each helper reads
//     mhc_last_error_message() in the same C call as the operation and returns a malloc'd
//     copy that Go frees.
//
// `go test` runs with GODEBUG=cgocheck=2 in scripts/test.d/40-go.sh to prove the rules hold.

/*
#cgo pkg-config: mhc
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <mhc/mhc.h>

#define MHCGO_MAX_DIMS 8

// A tensor descriptor that holds no pointers, so Go may pass arrays of it to C.
typedef struct {
  int32_t present;      // 0: pass NULL instead of a tensor
  int32_t device_type;  // DLDeviceType
  int32_t device_id;
  int32_t ndim;
  uint8_t code;         // DLDataTypeCode
  uint8_t bits;
  uint16_t lanes;
  uint32_t reserved;
  uint64_t byte_offset;
  uintptr_t addr;       // data address when it is not Go memory (device or C memory)
  int64_t shape[MHCGO_MAX_DIMS];
} mhcgo_tensor;

typedef struct {
  DLTensor t;
  int64_t shape[MHCGO_MAX_DIMS];
} mhcgo_dl;

// Builds the DLTensor of d in *out (C stack memory of the caller). go_data, when not NULL,
// is the Go slice's data pointer, which cgo lets C use for the duration of the call.
static const DLTensor *mhcgo_make(mhcgo_dl *out, const mhcgo_tensor *d, void *go_data) {
  if (!d->present) return NULL;
  memset(out, 0, sizeof *out);
  memcpy(out->shape, d->shape, sizeof out->shape);
  out->t.data = go_data != NULL ? go_data : (void *)d->addr;
  out->t.device.device_type = (DLDeviceType)d->device_type;
  out->t.device.device_id = d->device_id;
  out->t.ndim = d->ndim;
  out->t.dtype.code = d->code;
  out->t.dtype.bits = d->bits;
  out->t.dtype.lanes = d->lanes;
  out->t.shape = out->shape;
  out->t.strides = NULL;
  out->t.byte_offset = d->byte_offset;
  return &out->t;
}

// A malloc'd copy of the calling thread's last error message (NULL on success or OOM).
static char *mhcgo_error(mhc_status_t st) {
  if (st == MHC_SUCCESS) return NULL;
  const char *m = mhc_last_error_message();
  size_t n = strlen(m) + 1;
  char *copy = (char *)malloc(n);
  if (copy != NULL) memcpy(copy, m, n);
  return copy;
}

static void *mhcgo_ptr(void *go_data, uintptr_t addr) {
  return go_data != NULL ? go_data : (void *)addr;
}

static mhc_status_t mhcgo_context_create(uintptr_t *out, int32_t backend, int32_t device,
                                         uint32_t flags, char **msg) {
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  cfg.backend = backend;
  cfg.device_id = device;
  cfg.flags = flags;
  mhc_context *ctx = NULL;
  mhc_status_t st = mhc_context_create(&ctx, &cfg);
  *out = (uintptr_t)ctx;
  *msg = mhcgo_error(st);
  return st;
}

static mhc_status_t mhcgo_context_destroy(uintptr_t ctx, char **msg) {
  mhc_status_t st = mhc_context_destroy((mhc_context *)ctx);
  *msg = mhcgo_error(st);
  return st;
}

static mhc_status_t mhcgo_context_get_backend(uintptr_t ctx, int32_t *backend, int32_t *device,
                                              char **msg) {
  mhc_status_t st = mhc_context_get_backend((const mhc_context *)ctx, backend, device);
  *msg = mhcgo_error(st);
  return st;
}

static mhc_hc_params mhcgo_default_params(void) {
  mhc_hc_params p = MHC_HC_PARAMS_INIT;
  return p;
}

static mhc_status_t mhcgo_workspace_size(uintptr_t ctx, int32_t op, const mhc_hc_params *p,
                                         int64_t num_tokens, int64_t hidden, size_t *bytes,
                                         char **msg) {
  mhc_status_t st = mhc_workspace_size((const mhc_context *)ctx, op, p, num_tokens, hidden, bytes);
  *msg = mhcgo_error(st);
  return st;
}

// d[0..3] = fn, scale, base, norm_weight; d[4] = residual; d[5..7] = post_mix_out,
// comb_mix_out, layer_input_out.
static mhc_status_t mhcgo_hc_pre(uintptr_t ctx, const mhc_hc_params *p, const mhcgo_tensor *d,
                                 void *g0, void *g1, void *g2, void *g3, void *g4, void *g5,
                                 void *g6, void *g7, void *ws_go, uintptr_t ws_addr,
                                 size_t ws_bytes, uintptr_t stream, char **msg) {
  mhcgo_dl b[8];
  mhc_hc_weights w;
  w.fn = mhcgo_make(&b[0], &d[0], g0);
  w.scale = mhcgo_make(&b[1], &d[1], g1);
  w.base = mhcgo_make(&b[2], &d[2], g2);
  w.norm_weight = mhcgo_make(&b[3], &d[3], g3);
  mhc_status_t st = mhc_hc_pre((mhc_context *)ctx, p, &w, mhcgo_make(&b[4], &d[4], g4),
                               mhcgo_make(&b[5], &d[5], g5), mhcgo_make(&b[6], &d[6], g6),
                               mhcgo_make(&b[7], &d[7], g7), mhcgo_ptr(ws_go, ws_addr), ws_bytes,
                               (struct CUstream_st *)stream);
  *msg = mhcgo_error(st);
  return st;
}

// d[0..4] = x, residual, post_mix, comb_mix, residual_out.
static mhc_status_t mhcgo_hc_post(uintptr_t ctx, const mhcgo_tensor *d, void *g0, void *g1,
                                  void *g2, void *g3, void *g4, uintptr_t stream, char **msg) {
  mhcgo_dl b[5];
  mhc_status_t st = mhc_hc_post((mhc_context *)ctx, mhcgo_make(&b[0], &d[0], g0),
                                mhcgo_make(&b[1], &d[1], g1), mhcgo_make(&b[2], &d[2], g2),
                                mhcgo_make(&b[3], &d[3], g3), mhcgo_make(&b[4], &d[4], g4),
                                (struct CUstream_st *)stream);
  *msg = mhcgo_error(st);
  return st;
}

// d[0..3] = next fn, scale, base, norm_weight; d[4..7] = x, residual, post_mix, comb_mix;
// d[8..11] = residual_out, post_mix_out, comb_mix_out, layer_input_out.
static mhc_status_t mhcgo_hc_post_pre(uintptr_t ctx, const mhc_hc_params *p,
                                      const mhcgo_tensor *d, void *g0, void *g1, void *g2,
                                      void *g3, void *g4, void *g5, void *g6, void *g7,
                                      void *g8, void *g9, void *g10, void *g11, void *ws_go,
                                      uintptr_t ws_addr, size_t ws_bytes, uintptr_t stream,
                                      char **msg) {
  mhcgo_dl b[12];
  mhc_hc_weights w;
  w.fn = mhcgo_make(&b[0], &d[0], g0);
  w.scale = mhcgo_make(&b[1], &d[1], g1);
  w.base = mhcgo_make(&b[2], &d[2], g2);
  w.norm_weight = mhcgo_make(&b[3], &d[3], g3);
  mhc_status_t st = mhc_hc_post_pre(
      (mhc_context *)ctx, p, &w, mhcgo_make(&b[4], &d[4], g4), mhcgo_make(&b[5], &d[5], g5),
      mhcgo_make(&b[6], &d[6], g6), mhcgo_make(&b[7], &d[7], g7), mhcgo_make(&b[8], &d[8], g8),
      mhcgo_make(&b[9], &d[9], g9), mhcgo_make(&b[10], &d[10], g10),
      mhcgo_make(&b[11], &d[11], g11), mhcgo_ptr(ws_go, ws_addr), ws_bytes,
      (struct CUstream_st *)stream);
  *msg = mhcgo_error(st);
  return st;
}

// d[0..4] = fn_head, scale, base, residual, out.
static mhc_status_t mhcgo_hc_head(uintptr_t ctx, const mhc_hc_params *p, const mhcgo_tensor *d,
                                  void *g0, void *g1, void *g2, void *g3, void *g4, void *ws_go,
                                  uintptr_t ws_addr, size_t ws_bytes, uintptr_t stream,
                                  char **msg) {
  mhcgo_dl b[5];
  mhc_status_t st = mhc_hc_head((mhc_context *)ctx, p, mhcgo_make(&b[0], &d[0], g0),
                                mhcgo_make(&b[1], &d[1], g1), mhcgo_make(&b[2], &d[2], g2),
                                mhcgo_make(&b[3], &d[3], g3), mhcgo_make(&b[4], &d[4], g4),
                                mhcgo_ptr(ws_go, ws_addr), ws_bytes, (struct CUstream_st *)stream);
  *msg = mhcgo_error(st);
  return st;
}
*/
import "C"

import "unsafe"

// maxDims is the most dimensions a tensor descriptor carries (the library accepts ndim <= 8).
const maxDims = C.MHCGO_MAX_DIMS

// compiledVersion is MHC_VERSION of the header this package was compiled against.
const compiledVersion = int(C.MHC_VERSION)

// handle is the address of a C mhc_context. It is C memory, so an integer is the honest
// Go type for it: the garbage collector has nothing to trace there.
type handle uintptr

// takeError turns a failed status and the C message copy into *Error, freeing the copy.
func takeError(st C.mhc_status_t, msg *C.char) error {
	if msg != nil {
		defer C.free(unsafe.Pointer(msg))
	}
	if st == C.MHC_SUCCESS {
		return nil
	}
	m := ""
	if msg != nil {
		m = C.GoString(msg)
	}
	return &Error{Status: Status(st), Message: m}
}

func cStatusString(s Status) string {
	return C.GoString(C.mhc_status_string(C.mhc_status_t(s)))
}

func cVersion() int { return int(C.mhc_get_version()) }

func cContextCreate(backend Backend, device int32, flags ContextFlags) (handle, error) {
	var out C.uintptr_t
	var msg *C.char
	st := C.mhcgo_context_create(&out, C.int32_t(backend), C.int32_t(device), C.uint32_t(flags), &msg)
	if err := takeError(st, msg); err != nil {
		return 0, err
	}
	return handle(out), nil
}

func cContextDestroy(h handle) error {
	var msg *C.char
	st := C.mhcgo_context_destroy(C.uintptr_t(h), &msg)
	return takeError(st, msg)
}

func cContextGetBackend(h handle) (Backend, int, error) {
	var backend, device C.int32_t
	var msg *C.char
	st := C.mhcgo_context_get_backend(C.uintptr_t(h), &backend, &device, &msg)
	if err := takeError(st, msg); err != nil {
		return 0, 0, err
	}
	return Backend(backend), int(device), nil
}

func cDefaultParams() Params {
	c := C.mhcgo_default_params()
	return Params{
		HcMult:         int32(c.hc_mult),
		SinkhornIters:  int32(c.sinkhorn_iters),
		RMSEps:         float32(c.rms_eps),
		PreEps:         float32(c.pre_eps),
		SinkhornEps:    float32(c.sinkhorn_eps),
		PostMult:       float32(c.post_mult),
		NormEps:        float32(c.norm_eps),
		BatchInvariant: uint32(c.flags)&uint32(FlagBatchInvariant) != 0,
	}
}

// cParams fills the C struct, including the size and version that the library checks.
func cParams(p *Params) C.mhc_hc_params {
	var flags uint32
	if p.BatchInvariant {
		flags |= uint32(FlagBatchInvariant)
	}
	return C.mhc_hc_params{
		size:           C.sizeof_mhc_hc_params,
		version:        C.MHC_HC_PARAMS_VERSION,
		hc_mult:        C.int32_t(p.HcMult),
		sinkhorn_iters: C.int32_t(p.SinkhornIters),
		rms_eps:        C.float(p.RMSEps),
		pre_eps:        C.float(p.PreEps),
		sinkhorn_eps:   C.float(p.SinkhornEps),
		post_mult:      C.float(p.PostMult),
		norm_eps:       C.float(p.NormEps),
		flags:          C.uint32_t(flags),
	}
}

// desc is the pointer-free C descriptor of t; the zero Tensor gives present = 0 (NULL).
func desc(t *Tensor) C.mhcgo_tensor {
	var d C.mhcgo_tensor
	if !t.ok {
		return d
	}
	d.present = 1
	d.device_type = C.int32_t(t.dev.Type)
	d.device_id = C.int32_t(t.dev.ID)
	d.ndim = C.int32_t(t.ndim)
	d.code = C.uint8_t(t.dtype.Code())
	d.bits = C.uint8_t(t.dtype.Bits())
	d.lanes = C.uint16_t(t.dtype.Lanes())
	d.addr = C.uintptr_t(t.addr)
	for i := 0; i < int(t.ndim); i++ {
		d.shape[i] = C.int64_t(t.shape[i])
	}
	return d
}

func cWorkspaceSize(h handle, op Op, p *Params, numTokens, hidden int64) (int, error) {
	cp := cParams(p)
	var bytes C.size_t
	var msg *C.char
	st := C.mhcgo_workspace_size(C.uintptr_t(h), C.int32_t(op), &cp, C.int64_t(numTokens),
		C.int64_t(hidden), &bytes, &msg)
	if err := takeError(st, msg); err != nil {
		return 0, err
	}
	return int(bytes), nil
}

func cHcPre(h handle, p *Params, w *Weights, t [4]*Tensor, ws *Workspace, s Stream) error {
	cp := cParams(p)
	all := [8]*Tensor{&w.Fn, &w.Scale, &w.Base, &w.NormWeight, t[0], t[1], t[2], t[3]}
	var d [8]C.mhcgo_tensor
	for i, x := range all {
		d[i] = desc(x)
	}
	var msg *C.char
	st := C.mhcgo_hc_pre(C.uintptr_t(h), &cp, &d[0],
		all[0].host, all[1].host, all[2].host, all[3].host,
		all[4].host, all[5].host, all[6].host, all[7].host,
		ws.host, C.uintptr_t(ws.addr), C.size_t(ws.size), C.uintptr_t(s), &msg)
	return takeError(st, msg)
}

func cHcPost(h handle, t [5]*Tensor, s Stream) error {
	var d [5]C.mhcgo_tensor
	for i, x := range t {
		d[i] = desc(x)
	}
	var msg *C.char
	st := C.mhcgo_hc_post(C.uintptr_t(h), &d[0], t[0].host, t[1].host, t[2].host, t[3].host,
		t[4].host, C.uintptr_t(s), &msg)
	return takeError(st, msg)
}

func cHcPostPre(h handle, p *Params, w *Weights, t [8]*Tensor, ws *Workspace, s Stream) error {
	cp := cParams(p)
	all := [12]*Tensor{&w.Fn, &w.Scale, &w.Base, &w.NormWeight,
		t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]}
	var d [12]C.mhcgo_tensor
	for i, x := range all {
		d[i] = desc(x)
	}
	var msg *C.char
	st := C.mhcgo_hc_post_pre(C.uintptr_t(h), &cp, &d[0],
		all[0].host, all[1].host, all[2].host, all[3].host,
		all[4].host, all[5].host, all[6].host, all[7].host,
		all[8].host, all[9].host, all[10].host, all[11].host,
		ws.host, C.uintptr_t(ws.addr), C.size_t(ws.size), C.uintptr_t(s), &msg)
	return takeError(st, msg)
}

func cHcHead(h handle, p *Params, t [5]*Tensor, ws *Workspace, s Stream) error {
	cp := cParams(p)
	var d [5]C.mhcgo_tensor
	for i, x := range t {
		d[i] = desc(x)
	}
	var msg *C.char
	st := C.mhcgo_hc_head(C.uintptr_t(h), &cp, &d[0], t[0].host, t[1].host, t[2].host,
		t[3].host, t[4].host, ws.host, C.uintptr_t(ws.addr), C.size_t(ws.size), C.uintptr_t(s),
		&msg)
	return takeError(st, msg)
}
