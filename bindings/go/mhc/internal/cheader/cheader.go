// Package cheader exposes, through cgo, the values that the C compiler sees for the macros
// of mhc.h, so that the tests of package mhc (which cannot use cgo themselves) can check
// the Go constants against the header. It is for tests only.
package cheader

/*
#cgo pkg-config: mhc
#include <mhc/mhc.h>

static mhc_context_config cheader_context_config_init(void) {
  mhc_context_config c = MHC_CONTEXT_CONFIG_INIT;
  return c;
}
static mhc_hc_params cheader_hc_params_init(void) {
  mhc_hc_params p = MHC_HC_PARAMS_INIT;
  return p;
}
*/
import "C"

// Defines maps every integer-valued MHC_* macro of mhc.h that the binding mirrors to the
// value the C compiler gives it. A macro the header gains must be added here (and to the
// binding): the header test fails until it is.
var Defines = map[string]int64{
	"MHC_SUCCESS":                     C.MHC_SUCCESS,
	"MHC_ERROR_INVALID_ARGUMENT":      C.MHC_ERROR_INVALID_ARGUMENT,
	"MHC_ERROR_INVALID_HANDLE":        C.MHC_ERROR_INVALID_HANDLE,
	"MHC_ERROR_NOT_SUPPORTED":         C.MHC_ERROR_NOT_SUPPORTED,
	"MHC_ERROR_DEVICE_MISMATCH":       C.MHC_ERROR_DEVICE_MISMATCH,
	"MHC_ERROR_WORKSPACE_TOO_SMALL":   C.MHC_ERROR_WORKSPACE_TOO_SMALL,
	"MHC_ERROR_OUT_OF_MEMORY":         C.MHC_ERROR_OUT_OF_MEMORY,
	"MHC_ERROR_CUDA":                  C.MHC_ERROR_CUDA,
	"MHC_ERROR_VERSION_MISMATCH":      C.MHC_ERROR_VERSION_MISMATCH,
	"MHC_ERROR_INTERNAL":              C.MHC_ERROR_INTERNAL,
	"MHC_BACKEND_CUDA":                C.MHC_BACKEND_CUDA,
	"MHC_BACKEND_CPU":                 C.MHC_BACKEND_CPU,
	"MHC_CONTEXT_FLAG_CHECK_POINTERS": C.MHC_CONTEXT_FLAG_CHECK_POINTERS,
	"MHC_CONTEXT_FLAG_PDL":            C.MHC_CONTEXT_FLAG_PDL,
	"MHC_CONTEXT_CONFIG_VERSION":      C.MHC_CONTEXT_CONFIG_VERSION,
	"MHC_FLAG_BATCH_INVARIANT":        C.MHC_FLAG_BATCH_INVARIANT,
	"MHC_HC_PARAMS_VERSION":           C.MHC_HC_PARAMS_VERSION,
	"MHC_OP_HC_PRE":                   C.MHC_OP_HC_PRE,
	"MHC_OP_HC_POST_PRE":              C.MHC_OP_HC_POST_PRE,
	"MHC_OP_HC_HEAD":                  C.MHC_OP_HC_HEAD,
	"MHC_OP_HC_POST":                  C.MHC_OP_HC_POST,
}

// Version is MHC_VERSION of the header (mhc/version.h).
const Version = int64(C.MHC_VERSION)

// ContextConfigInit is MHC_CONTEXT_CONFIG_INIT field by field.
type ContextConfigInit struct {
	Size     uint64
	Version  uint32
	Backend  int32
	DeviceID int32
	Flags    uint32
}

// ContextConfigDefaults returns MHC_CONTEXT_CONFIG_INIT as the C compiler sees it.
func ContextConfigDefaults() ContextConfigInit {
	c := C.cheader_context_config_init()
	return ContextConfigInit{uint64(c.size), uint32(c.version), int32(c.backend),
		int32(c.device_id), uint32(c.flags)}
}

// HcParamsInit is MHC_HC_PARAMS_INIT field by field.
type HcParamsInit struct {
	Size                  uint64
	Version               uint32
	HcMult, SinkhornIters int32
	RMSEps, PreEps        float32
	SinkhornEps, PostMult float32
	NormEps               float32
	Flags                 uint32
}

// HcParamsDefaults returns MHC_HC_PARAMS_INIT as the C compiler sees it.
func HcParamsDefaults() HcParamsInit {
	p := C.cheader_hc_params_init()
	return HcParamsInit{uint64(p.size), uint32(p.version), int32(p.hc_mult),
		int32(p.sinkhorn_iters), float32(p.rms_eps), float32(p.pre_eps), float32(p.sinkhorn_eps),
		float32(p.post_mult), float32(p.norm_eps), uint32(p.flags)}
}

// Sizeof of the C structs the binding fills in.
const (
	SizeofContextConfig = int64(C.sizeof_mhc_context_config)
	SizeofHcParams      = int64(C.sizeof_mhc_hc_params)
)
