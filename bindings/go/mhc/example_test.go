package mhc_test

import (
	"fmt"
	"log"

	"github.com/mhc-project/mhc/bindings/go/mhc"
)

// hc_pre on the CPU backend: 2 tokens, hidden size 8.
func Example() {
	const T, H = 2, 8
	ctx, err := mhc.NewContext(mhc.BackendCPU, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer ctx.Close()

	residual := make([]mhc.BF16, T*4*H) // [T, 4, H] streams
	for i := range residual {
		residual[i] = mhc.FromFloat32(float32(i%7) - 3)
	}
	fn := make([]float32, 24*4*H) // [24, 4H]: zero projection, so every gate is sigmoid(base)
	scale := []float32{1, 1, 1}
	base := make([]float32, 24)
	w := mhc.Weights{Fn: mhc.HostF32(fn, 24, 4*H), Scale: mhc.HostF32(scale, 3), Base: mhc.HostF32(base, 24)}

	p := mhc.DefaultParams()
	post := make([]float32, T*4)
	comb := make([]float32, T*4*4)
	layerInput := make([]mhc.BF16, T*H)
	err = ctx.HcPre(&p, w, mhc.HostBF16(residual, T, 4, H), mhc.HostF32(post, T, 4),
		mhc.HostF32(comb, T, 4, 4), mhc.HostBF16(layerInput, T, H), mhc.Workspace{}, mhc.DefaultStream)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("post %.3f comb %.3f layer_input[0] %.3f\n", post[0], comb[0], layerInput[0].Float32())
	// Output: post 1.000 comb 0.250 layer_input[0] -3.000
}
