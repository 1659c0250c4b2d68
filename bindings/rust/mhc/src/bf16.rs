//! The bfloat16 element type.
use std::fmt;

/// A bfloat16 value (1 sign, 8 exponent, 7 mantissa bits), stored as its bit pattern: the
/// activation dtype of the mHC operators (`kDLBfloat`, 16 bits).
///
/// Equality and hashing compare bit patterns (so `-0.0 != 0.0` and a NaN equals itself),
/// which is what the bitwise-determinism tests of the library want.
#[repr(transparent)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Bf16(pub u16);

impl Bf16 {
    /// +0.0
    pub const ZERO: Bf16 = Bf16(0x0000);
    /// 1.0
    pub const ONE: Bf16 = Bf16(0x3f80);

    /// Rounds an f32 to the nearest bfloat16, ties to even (the rounding the library uses).
    /// NaN stays NaN (quiet, sign kept); infinities and overflow give infinities.
    pub fn from_f32(v: f32) -> Bf16 {
        let u = v.to_bits();
        if (u & 0x7fff_ffff) > 0x7f80_0000 {
            return Bf16(((u >> 16) as u16) | 0x0040);
        }
        let rounded = u.wrapping_add(0x7fff + ((u >> 16) & 1));
        Bf16((rounded >> 16) as u16)
    }

    /// The exact f32 value.
    pub fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }

    /// From a bit pattern.
    pub const fn from_bits(bits: u16) -> Bf16 {
        Bf16(bits)
    }

    /// The bit pattern.
    pub const fn to_bits(self) -> u16 {
        self.0
    }

    /// Whether the value is a NaN.
    pub fn is_nan(self) -> bool {
        (self.0 & 0x7fff) > 0x7f80
    }
}

impl From<Bf16> for f32 {
    fn from(v: Bf16) -> f32 {
        v.to_f32()
    }
}

impl fmt::Debug for Bf16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}bf16", self.to_f32())
    }
}

impl fmt::Display for Bf16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_f32(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::Bf16;

    #[test]
    fn round_to_nearest_even() {
        assert_eq!(Bf16::from_f32(1.0), Bf16::ONE);
        assert_eq!(Bf16::from_f32(0.0), Bf16::ZERO);
        assert_eq!(Bf16::from_f32(-0.0).0, 0x8000);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        assert_eq!(Bf16::from_f32(1.0 + 1.0 / 256.0), Bf16::ONE);
        // 1 + 3*2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 (even): rounds up.
        assert_eq!(Bf16::from_f32(1.0 + 3.0 / 256.0).to_f32(), 1.0 + 1.0 / 64.0);
        // Just above the halfway point rounds up.
        assert_eq!(Bf16::from_f32(f32::from_bits(0x3f80_8001)).0, 0x3f81);
        assert_eq!(Bf16::from_f32(f32::MAX).to_f32(), f32::INFINITY);
        assert_eq!(Bf16::from_f32(f32::INFINITY).to_f32(), f32::INFINITY);
        assert!(Bf16::from_f32(f32::NAN).is_nan());
        assert!(Bf16::from_f32(f32::from_bits(0x7f80_0001)).is_nan()); // payload in low bits
        for bits in [0u16, 1, 0x3f80, 0x7f7f, 0x8001, 0xc2f7] {
            assert_eq!(
                Bf16::from_f32(Bf16(bits).to_f32()).0,
                bits,
                "round trip {bits:#x}"
            );
        }
    }
}
