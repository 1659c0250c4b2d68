package mhc

import "strconv"

// Backend selects the implementation behind a Context (MHC_BACKEND_*).
type Backend int32

const (
	BackendCUDA Backend = 1 // MHC_BACKEND_CUDA: device memory, asynchronous on a stream
	BackendCPU  Backend = 2 // MHC_BACKEND_CPU: host memory, synchronous reference backend
)

func (b Backend) String() string {
	switch b {
	case BackendCUDA:
		return "cuda"
	case BackendCPU:
		return "cpu"
	}
	return "backend(" + strconv.Itoa(int(b)) + ")"
}

// ContextFlags are the MHC_CONTEXT_FLAG_* bits of a context's configuration. NewContext
// takes them through options (WithCheckPointers, WithPDL).
type ContextFlags uint32

const (
	// ContextFlagCheckPointers (MHC_CONTEXT_FLAG_CHECK_POINTERS): check on every call that
	// each tensor's memory lives where its Device says, returning StatusDeviceMismatch
	// instead of faulting. Costs host time per tensor. Does nothing in a CPU-only build.
	ContextFlagCheckPointers ContextFlags = 1 << 0
	// ContextFlagPDL (MHC_CONTEXT_FLAG_PDL): programmatic dependent launch on Hopper+.
	ContextFlagPDL ContextFlags = 1 << 1
)

// ContextConfigVersion is MHC_CONTEXT_CONFIG_VERSION, the configuration layout this package
// fills in (the size and version fields are set by the binding).
const ContextConfigVersion = 1

// Op names an operator for Context.WorkspaceSize (MHC_OP_*).
type Op int32

const (
	OpHcPre     Op = 1 // MHC_OP_HC_PRE
	OpHcPostPre Op = 2 // MHC_OP_HC_POST_PRE
	OpHcHead    Op = 3 // MHC_OP_HC_HEAD
	OpHcPost    Op = 4 // MHC_OP_HC_POST: always 0 bytes
)

// ParamFlags are the MHC_FLAG_* bits of mhc_hc_params.flags. Params exposes each one as a
// named field; the constants document the bit values.
type ParamFlags uint32

// FlagBatchInvariant is MHC_FLAG_BATCH_INVARIANT; see Params.BatchInvariant.
const FlagBatchInvariant ParamFlags = 1 << 0

// HcParamsVersion is MHC_HC_PARAMS_VERSION, the parameter layout this package fills in.
const HcParamsVersion = 1

// Params are the scalar hyper-parameters of the mHC operators (mhc_hc_params). Start from
// DefaultParams(), the DeepSeek-V4 values, and change what you need. The size and version
// fields of the C struct are filled in by the binding.
type Params struct {
	HcMult        int32   // number of residual streams n; only 4 is supported
	SinkhornIters int32   // Sinkhorn repeats, >= 1 (DeepSeek-V4: 20)
	RMSEps        float32 // eps of the RMS over the n*H flattened streams (1e-6)
	PreEps        float32 // added to the pre gates (1e-6)
	SinkhornEps   float32 // Sinkhorn eps (1e-6)
	PostMult      float32 // post gate multiplier (2.0 in the model)
	NormEps       float32 // eps of the optional fused RMSNorm of layer_input (1e-6)
	// BatchInvariant (MHC_FLAG_BATCH_INVARIANT): a token's outputs are bitwise identical
	// whatever the number of tokens in the call. Slightly slower at some T.
	BatchInvariant bool
}

// DefaultParams returns MHC_HC_PARAMS_INIT of the header this package was built against:
// the DeepSeek-V4 values (hc_mult 4, 20 Sinkhorn iterations, eps 1e-6, post_mult 2.0).
func DefaultParams() Params { return cDefaultParams() }

// Version returns the run-time library version, MAJOR*10000 + MINOR*100 + PATCH
// (mhc_get_version).
func Version() int { return cVersion() }

// CompiledVersion returns MHC_VERSION of the header this package was compiled against.
func CompiledVersion() int { return compiledVersion }
