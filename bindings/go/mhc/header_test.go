package mhc

// The binding must follow include/mhc/mhc.h: every MHC_* macro, every mhc_* function and
// every field of the public structs needs a Go counterpart listed below, and constants must
// have the value the C compiler gives them (read through cgo by internal/cheader, since a
// _test.go file cannot use cgo). A header change that the binding misses fails `go test`.

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/mhc-project/mhc/bindings/go/mhc/internal/cheader"
)

// goConstants: each integer MHC_* macro and the Go constant that mirrors it.
var goConstants = map[string]int64{
	"MHC_SUCCESS":                     int64(StatusSuccess),
	"MHC_ERROR_INVALID_ARGUMENT":      int64(StatusInvalidArgument),
	"MHC_ERROR_INVALID_HANDLE":        int64(StatusInvalidHandle),
	"MHC_ERROR_NOT_SUPPORTED":         int64(StatusNotSupported),
	"MHC_ERROR_DEVICE_MISMATCH":       int64(StatusDeviceMismatch),
	"MHC_ERROR_WORKSPACE_TOO_SMALL":   int64(StatusWorkspaceTooSmall),
	"MHC_ERROR_OUT_OF_MEMORY":         int64(StatusOutOfMemory),
	"MHC_ERROR_CUDA":                  int64(StatusCUDA),
	"MHC_ERROR_VERSION_MISMATCH":      int64(StatusVersionMismatch),
	"MHC_ERROR_INTERNAL":              int64(StatusInternal),
	"MHC_BACKEND_CUDA":                int64(BackendCUDA),
	"MHC_BACKEND_CPU":                 int64(BackendCPU),
	"MHC_CONTEXT_FLAG_CHECK_POINTERS": int64(ContextFlagCheckPointers),
	"MHC_CONTEXT_FLAG_PDL":            int64(ContextFlagPDL),
	"MHC_CONTEXT_CONFIG_VERSION":      ContextConfigVersion,
	"MHC_FLAG_BATCH_INVARIANT":        int64(FlagBatchInvariant),
	"MHC_HC_PARAMS_VERSION":           HcParamsVersion,
	"MHC_OP_HC_PRE":                   int64(OpHcPre),
	"MHC_OP_HC_POST_PRE":              int64(OpHcPostPre),
	"MHC_OP_HC_HEAD":                  int64(OpHcHead),
	"MHC_OP_HC_POST":                  int64(OpHcPost),
}

// otherMacros: MHC_* macros that are not integer constants, and where they are covered.
var otherMacros = map[string]string{
	"MHC_MHC_H_":              "include guard",
	"MHC_API":                 "export attribute",
	"MHC_CONTEXT_CONFIG_INIT": "TestHeaderInitializers; the binding uses it in mhcgo_context_create",
	"MHC_HC_PARAMS_INIT":      "TestHeaderInitializers; DefaultParams returns it",
}

// goFunctions: each mhc_* function and the Go API that exposes it.
var goFunctions = map[string]interface{}{
	"mhc_status_string":       Status.String,
	"mhc_last_error_message":  (*Error).Error, // Error.Message, read in the same C call
	"mhc_get_version":         Version,
	"mhc_context_create":      NewContext,
	"mhc_context_destroy":     (*Context).Close,
	"mhc_context_get_backend": (*Context).Backend,
	"mhc_hc_pre":              (*Context).HcPre,
	"mhc_hc_post":             (*Context).HcPost,
	"mhc_hc_post_pre":         (*Context).HcPostPre,
	"mhc_hc_head":             (*Context).HcHead,
	"mhc_workspace_size":      (*Context).WorkspaceSize,
}

// goStructFields: each field of each public struct and where the binding handles it.
// "Go:X" names a field of the Go type that must exist; anything else is a description.
var goStructFields = map[string]map[string]string{
	"mhc_context_config": {
		"size":      "set by the binding (MHC_CONTEXT_CONFIG_INIT)",
		"version":   "set by the binding (MHC_CONTEXT_CONFIG_INIT)",
		"backend":   "NewContext(backend, ...)",
		"device_id": "NewContext(_, device, ...)",
		"flags":     "WithCheckPointers, WithPDL",
	},
	"mhc_hc_params": {
		"size":           "set by the binding (sizeof)",
		"version":        "set by the binding (MHC_HC_PARAMS_VERSION)",
		"hc_mult":        "Go:HcMult",
		"sinkhorn_iters": "Go:SinkhornIters",
		"rms_eps":        "Go:RMSEps",
		"pre_eps":        "Go:PreEps",
		"sinkhorn_eps":   "Go:SinkhornEps",
		"post_mult":      "Go:PostMult",
		"norm_eps":       "Go:NormEps",
		"flags":          "Go:BatchInvariant",
	},
	"mhc_hc_weights": {
		"fn":          "Go:Fn",
		"scale":       "Go:Scale",
		"base":        "Go:Base",
		"norm_weight": "Go:NormWeight",
	},
}

var goStructTypes = map[string]reflect.Type{
	"mhc_context_config": nil,
	"mhc_hc_params":      reflect.TypeOf(Params{}),
	"mhc_hc_weights":     reflect.TypeOf(Weights{}),
}

// tensorArgs: Tensor parameters each operator's Go method must have, i.e. the C function's
// DLTensor parameters, where the weights struct counts as one Weights parameter.
var opMethods = map[string]string{
	"mhc_hc_pre": "HcPre", "mhc_hc_post": "HcPost", "mhc_hc_post_pre": "HcPostPre", "mhc_hc_head": "HcHead",
}

func headerText(t *testing.T) string {
	t.Helper()
	path := os.Getenv("MHC_HEADER")
	if path == "" {
		path = filepath.Join("..", "..", "..", "include", "mhc", "mhc.h")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the public header: %v (set MHC_HEADER to its path)", err)
	}
	return string(b)
}

var (
	blockComment = regexp.MustCompile(`(?s)/\*.*?\*/`)
	lineComment  = regexp.MustCompile(`//[^\n]*`)
)

// stripComments removes comments and joins backslash-continued lines.
func stripComments(s string) string {
	s = blockComment.ReplaceAllString(s, " ")
	s = lineComment.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "\\\n", " ")
}

type define struct{ name, value string }

func headerDefines(text string) []define {
	re := regexp.MustCompile(`(?m)^[ \t]*#[ \t]*define[ \t]+(MHC_\w+)(\([^)]*\))?(.*)$`)
	seen := map[string]bool{}
	var out []define
	for _, m := range re.FindAllStringSubmatch(stripComments(text), -1) {
		if seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		out = append(out, define{m[1], strings.TrimSpace(m[3])})
	}
	return out
}

// evalInt evaluates the integer macro bodies the header uses: 12, 3u, (1u << 2).
func evalInt(v string) (int64, bool) {
	v = strings.NewReplacer("(", "", ")", "", " ", "", "\t", "").Replace(v)
	num := func(s string) (int64, bool) {
		s = strings.TrimRight(s, "uUlL")
		n, err := strconv.ParseInt(s, 0, 64)
		return n, err == nil
	}
	if i := strings.Index(v, "<<"); i >= 0 {
		a, ok1 := num(v[:i])
		b, ok2 := num(v[i+2:])
		return a << uint(b), ok1 && ok2
	}
	return num(v)
}

func TestHeaderConstants(t *testing.T) {
	defs := headerDefines(headerText(t))
	if len(defs) < 10 {
		t.Fatalf("found only %d MHC_* macros in the header; is the parser broken?", len(defs))
	}
	inHeader := map[string]bool{}
	for _, d := range defs {
		inHeader[d.name] = true
		if why, ok := otherMacros[d.name]; ok {
			t.Logf("%s: not an integer constant (%s)", d.name, why)
			continue
		}
		goVal, ok := goConstants[d.name]
		if !ok {
			t.Errorf("header defines %s %s but the Go package has no counterpart: add a Go "+
				"constant and list it in goConstants and internal/cheader", d.name, d.value)
			continue
		}
		hv, ok := evalInt(d.value)
		if !ok {
			t.Errorf("%s: cannot evaluate %q; extend evalInt", d.name, d.value)
			continue
		}
		cv, ok := cheader.Defines[d.name]
		if !ok {
			t.Errorf("%s: missing from internal/cheader.Defines", d.name)
			continue
		}
		if cv != hv {
			t.Errorf("%s: the header text says %d but the compiled header gives %d (is the "+
				"installed header found by pkg-config stale?)", d.name, hv, cv)
		}
		if goVal != cv {
			t.Errorf("%s: Go constant is %d, C value is %d", d.name, goVal, cv)
		}
	}
	for name := range goConstants {
		if !inHeader[name] {
			t.Errorf("the Go package mirrors %s, which the header no longer defines", name)
		}
	}
	for name := range otherMacros {
		if !inHeader[name] {
			t.Errorf("otherMacros lists %s, which the header no longer defines", name)
		}
	}
}

// cFunctions returns each mhc_* function of the header with its parameter list.
func cFunctions(text string) map[string]string {
	s := stripComments(text)
	s = regexp.MustCompile(`(?m)^[ \t]*#.*$`).ReplaceAllString(s, "")
	re := regexp.MustCompile(`\b(mhc_[a-z0-9_]+)\s*\(([^)]*)\)`)
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out[m[1]] = m[2]
	}
	return out
}

func TestHeaderFunctions(t *testing.T) {
	funcs := cFunctions(headerText(t))
	if len(funcs) < 8 {
		t.Fatalf("found only %d mhc_* functions in the header; is the parser broken?", len(funcs))
	}
	src, err := os.ReadFile("capi.go")
	if err != nil {
		t.Fatal(err)
	}
	ctxType := reflect.TypeOf(&Context{})
	for name, params := range funcs {
		goAPI, ok := goFunctions[name]
		if !ok {
			t.Errorf("header declares %s but the Go package does not expose it: wrap it and "+
				"list it in goFunctions", name)
			continue
		}
		if goAPI == nil {
			t.Errorf("%s: nil Go counterpart", name)
		}
		call := regexp.MustCompile(`(C\.|=\s*|return\s+)` + name + `\s*\(`)
		if !call.Match(src) {
			t.Errorf("%s: capi.go never calls it", name)
		}
		if method, ok := opMethods[name]; ok {
			want := strings.Count(params, "const DLTensor *")
			if strings.Contains(params, "mhc_hc_weights") {
				want++ // the Weights parameter
			}
			m, ok := ctxType.MethodByName(method)
			if !ok {
				t.Errorf("%s: Context has no method %s", name, method)
				continue
			}
			got := 0
			for i := 0; i < m.Type.NumIn(); i++ {
				switch m.Type.In(i) {
				case reflect.TypeOf(Tensor{}), reflect.TypeOf(Weights{}):
					got++
				}
			}
			if got != want {
				t.Errorf("%s takes %d tensor arguments (counting the weights as one) but "+
					"Context.%s takes %d", name, want, method, got)
			}
		}
	}
	for name := range goFunctions {
		if _, ok := funcs[name]; !ok {
			t.Errorf("goFunctions lists %s, which the header no longer declares", name)
		}
	}
}

// headerStructs returns the field names of each `typedef struct NAME { ... } NAME;`.
func headerStructs(text string) map[string][]string {
	s := stripComments(text)
	re := regexp.MustCompile(`(?s)typedef\s+struct\s+(mhc_\w+)\s*\{(.*?)\}\s*(\w+)\s*;`)
	field := regexp.MustCompile(`(\w+)\s*(\[[^\]]*\])?\s*$`)
	out := map[string][]string{}
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		var names []string
		for _, decl := range strings.Split(m[2], ";") {
			decl = strings.TrimSpace(decl)
			if decl == "" {
				continue
			}
			// "float rms_eps" or "int32_t a, b" style declarations.
			for _, part := range strings.Split(decl, ",") {
				if f := field.FindStringSubmatch(strings.TrimSpace(part)); f != nil {
					names = append(names, f[1])
				}
			}
		}
		out[m[1]] = names
	}
	return out
}

func TestHeaderStructs(t *testing.T) {
	structs := headerStructs(headerText(t))
	if len(structs) < 3 {
		t.Fatalf("found only %d public structs in the header; is the parser broken?", len(structs))
	}
	for name, fields := range structs {
		mapping, ok := goStructFields[name]
		if !ok {
			t.Errorf("header defines struct %s but the binding does not handle it", name)
			continue
		}
		seen := map[string]bool{}
		for _, f := range fields {
			seen[f] = true
			how, ok := mapping[f]
			if !ok {
				t.Errorf("%s.%s is new in the header; the binding does not fill it", name, f)
				continue
			}
			if strings.HasPrefix(how, "Go:") {
				typ := goStructTypes[name]
				if _, ok := typ.FieldByName(strings.TrimPrefix(how, "Go:")); !ok {
					t.Errorf("%s.%s: %s has no field %s", name, f, typ, strings.TrimPrefix(how, "Go:"))
				}
			}
		}
		var stale []string
		for f := range mapping {
			if !seen[f] {
				stale = append(stale, f)
			}
		}
		sort.Strings(stale)
		if len(stale) > 0 {
			t.Errorf("%s: the binding maps fields %v that the header no longer has", name, stale)
		}
	}
	for name := range goStructFields {
		if _, ok := structs[name]; !ok {
			t.Errorf("the binding handles struct %s, which the header no longer defines", name)
		}
	}
}

func TestHeaderInitializers(t *testing.T) {
	p := cheader.HcParamsDefaults()
	if p.Size != uint64(cheader.SizeofHcParams) || p.Version != HcParamsVersion {
		t.Errorf("MHC_HC_PARAMS_INIT size/version = %d/%d, want %d/%d", p.Size, p.Version,
			cheader.SizeofHcParams, HcParamsVersion)
	}
	want := Params{HcMult: p.HcMult, SinkhornIters: p.SinkhornIters, RMSEps: p.RMSEps,
		PreEps: p.PreEps, SinkhornEps: p.SinkhornEps, PostMult: p.PostMult, NormEps: p.NormEps,
		BatchInvariant: p.Flags&uint32(FlagBatchInvariant) != 0}
	if got := DefaultParams(); got != want {
		t.Errorf("DefaultParams() = %+v, MHC_HC_PARAMS_INIT = %+v", got, want)
	}
	// The DeepSeek-V4 values (reference/mhc-spec.md §1).
	ds := Params{HcMult: 4, SinkhornIters: 20, RMSEps: 1e-6, PreEps: 1e-6, SinkhornEps: 1e-6,
		PostMult: 2.0, NormEps: 1e-6}
	if got := DefaultParams(); got != ds {
		t.Errorf("DefaultParams() = %+v, want the DeepSeek-V4 values %+v", got, ds)
	}
	c := cheader.ContextConfigDefaults()
	if c.Size != uint64(cheader.SizeofContextConfig) || c.Version != ContextConfigVersion ||
		Backend(c.Backend) != BackendCUDA || c.DeviceID != 0 || c.Flags != 0 {
		t.Errorf("MHC_CONTEXT_CONFIG_INIT = %+v; the binding assumes CUDA, device 0, no flags", c)
	}
}

func TestVersion(t *testing.T) {
	if Version() != CompiledVersion() || int64(CompiledVersion()) != cheader.Version {
		t.Errorf("library version %d, compiled header %d, cheader %d", Version(),
			CompiledVersion(), cheader.Version)
	}
	if Version() <= 0 {
		t.Errorf("Version() = %d", Version())
	}
}
