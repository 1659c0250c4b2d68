package mhc

import "math"

// BF16 is a bfloat16 value held as its raw bits (the upper 16 bits of a float32). Slices of
// BF16 (or of uint16) are what HostBF16 wraps for the CPU backend.
type BF16 uint16

// FromFloat32 rounds f to the nearest bfloat16, ties to even, exactly as the library does:
// overflow rounds to infinity and every NaN becomes the canonical quiet NaN 0x7FFF.
func FromFloat32(f float32) BF16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return 0x7fff
	}
	u += 0x7fff + (u>>16)&1
	return BF16(u >> 16)
}

// Float32 returns the value of b as a float32 (exact).
func (b BF16) Float32() float32 { return math.Float32frombits(uint32(b) << 16) }

// Bits returns the raw bits of b.
func (b BF16) Bits() uint16 { return uint16(b) }

// ToBF16 rounds every element of src (FromFloat32) into a new slice.
func ToBF16(src []float32) []BF16 {
	out := make([]BF16, len(src))
	for i, v := range src {
		out[i] = FromFloat32(v)
	}
	return out
}

// ToFloat32 widens every element of src into a new slice.
func ToFloat32(src []BF16) []float32 {
	out := make([]float32, len(src))
	for i, v := range src {
		out[i] = v.Float32()
	}
	return out
}
