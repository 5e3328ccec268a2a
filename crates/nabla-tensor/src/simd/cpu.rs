//! What the machine is, for reports: the CPU's name and numbers, and the
//! level of the GEMM library's microkernels.

use super::{detected_simd_level, simd_level, SimdLevel};

/// The level of the microkernels the `gemm` crate runs on this CPU: it
/// chooses them itself from the CPU's features (AVX-512 F where present,
/// else FMA with AVX2, else plain loops), so [`limit_simd_level`](super::limit_simd_level) does not
/// lower it.
pub fn gemm_library_level() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        use std::is_x86_feature_detected as has;
        if has!("avx512f") {
            return SimdLevel::Avx512;
        }
        if has!("fma") {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Plain
}

/// This CPU in one line: its name, and on x86 its family and model numbers
/// (which tell generations apart where the name does not, as in virtual
/// machines) and the SIMD level the kernels run at.
pub fn cpu_description() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        // Leaves above the highest extended one the CPU reports are not read.
        let (name, family, model) = {
            let mut name = String::new();
            if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
                for leaf in 0x8000_0002..=0x8000_0004u32 {
                    let r = __cpuid(leaf);
                    for word in [r.eax, r.ebx, r.ecx, r.edx] {
                        name.extend(word.to_le_bytes().iter().map(|&b| b as char));
                    }
                }
            }
            let eax = __cpuid(1).eax;
            let base_family = (eax >> 8) & 0xf;
            let family = if base_family == 0xf {
                base_family + ((eax >> 20) & 0xff)
            } else {
                base_family
            };
            let model = if base_family == 0x6 || base_family == 0xf {
                (((eax >> 16) & 0xf) << 4) | ((eax >> 4) & 0xf)
            } else {
                (eax >> 4) & 0xf
            };
            (name, family, model)
        };
        let name = name.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        let name = if name.is_empty() { "x86-64" } else { name };
        format!(
            "{name} (family {family} model {model}), SIMD {}{}",
            simd_level(),
            if simd_level() == detected_simd_level() {
                String::new()
            } else {
                format!(" (limited; the CPU has {})", detected_simd_level())
            }
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        format!("{}, SIMD {}", std::env::consts::ARCH, simd_level())
    }
}
