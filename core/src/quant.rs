//! [`Quantization`]: the weight format a deployment serves, as serving stacks name it.
//!
//! Kept apart from [`Dtype`] (a numeric storage format) because today's formats are more than
//! a width: fp8 comes per-tensor or with 128x128 block scales (DeepSeek's checkpoints), NVIDIA's
//! nvfp4 carries one fp8 scale per 16 weights and OCP's mxfp4 one power-of-two scale per 32,
//! and int4 in the sources is weight-only (w4a16: the matrix math runs in 16 bits). The bytes a
//! decode step streams and the tensor-core rate a GEMM runs at both follow from the format,
//! so the format, not its width, is what rows and candidates carry.

use crate::units::Dtype;
use std::fmt;

/// A served weight format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quantization {
    Fp32,
    Fp16,
    Bf16,
    /// fp8 (e4m3) with one scale per tensor (or per channel).
    Fp8,
    /// fp8 (e4m3) with one scale per 128x128 block (DeepSeek-V3's `weight_block_size`).
    Fp8Block,
    /// int8 weights and activations (w8a8, SmoothQuant-style).
    Int8,
    /// NVIDIA fp4 (e2m1) with one fp8 scale per 16 weights (plus one per tensor).
    Nvfp4,
    /// OCP microscaling fp4 (e2m1) with one 8-bit power-of-two scale per 32 weights.
    Mxfp4,
    /// int4 weights, 16-bit activations (w4a16: AWQ, GPTQ, TensorRT-LLM's `int4_wo`), one
    /// 16-bit scale per group of 128.
    Int4W4a16,
}

use Quantization::*;

impl Quantization {
    /// Every format, widest first.
    pub const ALL: [Quantization; 9] = [
        Fp32, Fp16, Bf16, Fp8, Fp8Block, Int8, Nvfp4, Mxfp4, Int4W4a16,
    ];

    /// The name written to files and accepted on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fp32 => "f32",
            Fp16 => "fp16",
            Bf16 => "bf16",
            Fp8 => "fp8",
            Fp8Block => "fp8_block",
            Int8 => "int8",
            Nvfp4 => "nvfp4",
            Mxfp4 => "mxfp4",
            Int4W4a16 => "int4",
        }
    }

    /// Bytes stored per weight, scales included: what a decode step streams per parameter.
    pub fn bytes_per_weight(self) -> f64 {
        match self {
            Fp32 => 4.0,
            Fp16 | Bf16 => 2.0,
            Fp8 | Int8 => 1.0,
            // One fp32 scale per 128x128 block.
            Fp8Block => 1.0 + 4.0 / (128.0 * 128.0),
            // One fp8 scale per 16 weights.
            Nvfp4 => 0.5 + 1.0 / 16.0,
            // One 8-bit scale per 32 weights.
            Mxfp4 => 0.5 + 1.0 / 32.0,
            // One 16-bit scale per group of 128.
            Int4W4a16 => 0.5 + 2.0 / 128.0,
        }
    }

    /// The nearest plain [`Dtype`], for code that only knows widths (the embedded engine, the
    /// older physics): fp8 variants are fp8, the 4-bit formats int4.
    pub fn storage(self) -> Dtype {
        match self {
            Fp32 => Dtype::F32,
            Fp16 => Dtype::F16,
            Bf16 => Dtype::Bf16,
            Fp8 | Fp8Block => Dtype::Fp8,
            Int8 => Dtype::Int8,
            Nvfp4 | Mxfp4 | Int4W4a16 => Dtype::Int4,
        }
    }
}

impl From<Dtype> for Quantization {
    fn from(d: Dtype) -> Quantization {
        match d {
            Dtype::F32 => Fp32,
            Dtype::F16 => Fp16,
            Dtype::Bf16 => Bf16,
            Dtype::Fp8 => Fp8,
            Dtype::Int8 => Int8,
            Dtype::Int4 => Int4W4a16,
        }
    }
}

impl fmt::Display for Quantization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Quantization {
    type Err = String;
    /// Accepts pilot's names, Hugging Face's `torch_dtype` spellings and the names serving
    /// stacks and AIConfigurator use (`fp8_block`, `nvfp4`, `w4a16_mxfp4`, `int4_wo`, `awq`).
    /// A bare `fp4` is NVIDIA's nvfp4: the only fp4 format the sources label that way.
    fn from_str(s: &str) -> Result<Quantization, String> {
        let lower = s.trim().to_ascii_lowercase().replace('-', "_");
        Ok(match lower.as_str() {
            "fp8_block" | "fp8_blockwise" | "fp8block" => Fp8Block,
            "fp8_per_tensor" | "fp8_tensor" | "fp8_static" => Fp8,
            "nvfp4" | "fp4" | "nv_fp4" => Nvfp4,
            "mxfp4" | "w4a16_mxfp4" | "mx_fp4" => Mxfp4,
            "int4_wo" | "int4_awq" | "w4a16_awq" | "w4a16_gptq" => Int4W4a16,
            other => match other.parse::<Dtype>() {
                Ok(d) => Quantization::from(d),
                Err(_) => {
                    return Err(format!(
                        "unknown quantization '{}': use one of {}",
                        crate::validate::shorten(s.trim()),
                        Quantization::ALL.map(|q| q.name()).join(", ")
                    ));
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_and_source_spellings_resolve() {
        for q in Quantization::ALL {
            assert_eq!(q.name().parse::<Quantization>(), Ok(q), "{q}");
        }
        assert_eq!("fp8_block".parse(), Ok(Fp8Block));
        assert_eq!("NVFP4".parse(), Ok(Nvfp4));
        assert_eq!("w4a16_mxfp4".parse(), Ok(Mxfp4));
        assert_eq!("int4_wo".parse(), Ok(Int4W4a16));
        assert_eq!("bfloat16".parse(), Ok(Bf16));
        let err = "fp5".parse::<Quantization>().unwrap_err();
        assert!(err.contains("fp5") && err.contains("nvfp4"), "{err}");
    }

    #[test]
    fn dtypes_map_to_the_format_of_their_width() {
        for d in Dtype::ALL {
            let q = Quantization::from(d);
            assert_eq!(q.storage(), d);
            assert!(
                q.bytes_per_weight() >= d.bytes(),
                "{d}: scales only add bytes"
            );
        }
    }

    #[test]
    fn scales_make_fp4_formats_cost_more_than_half_a_byte() {
        assert!(Nvfp4.bytes_per_weight() > Mxfp4.bytes_per_weight());
        assert!(Mxfp4.bytes_per_weight() > 0.5);
        assert!(Fp8Block.bytes_per_weight() < 1.001);
    }
}
