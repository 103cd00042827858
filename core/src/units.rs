//! Quantities with their units.
//!
//! pilot moves numbers between measurements, catalogs, a physics model and a cost model; a
//! bare `f64` that is sometimes seconds and sometimes milliseconds is the classic bug there.
//! Every quantity that crosses a public API is one of these newtypes. They are thin
//! (`Copy`, one field, `serde(transparent)`) so that tables and files still hold plain numbers.
//!
//! Latency statistics are [`Millis`] rather than `std::time::Duration`: they are means,
//! percentiles and predictions (fractional, sometimes missing), and every source we read
//! reports milliseconds. Wall-clock timing in the client uses `Duration` and converts once.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

macro_rules! unit {
    ($(#[$doc:meta])* $name:ident, $suffix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub f64);

        impl $name {
            /// The raw number in this type's unit.
            pub fn value(self) -> f64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match f.precision() {
                    Some(p) => write!(f, "{:.*} {}", p, self.0, $suffix),
                    None => write!(f, "{} {}", self.0, $suffix),
                }
            }
        }

        impl std::ops::Add for $name {
            type Output = $name;
            fn add(self, o: $name) -> $name {
                $name(self.0 + o.0)
            }
        }

        impl std::ops::Mul<f64> for $name {
            type Output = $name;
            fn mul(self, k: f64) -> $name {
                $name(self.0 * k)
            }
        }
    };
}

unit!(
    /// A latency in milliseconds (TTFT, ITL, end-to-end, or a step time).
    Millis,
    "ms"
);
unit!(
    /// Milliseconds per input token: LLM-Pilot's normalised TTFT (nTTFT).
    MsPerToken,
    "ms/token"
);
unit!(
    /// A token rate (output or total throughput).
    TokensPerSec,
    "tok/s"
);
unit!(
    /// A request rate (open-loop arrivals or completed requests).
    RequestsPerSec,
    "req/s"
);
unit!(
    /// A price in US dollars per hour.
    UsdPerHour,
    "USD/h"
);
unit!(
    /// A price in US dollars per million tokens.
    UsdPerMillionTokens,
    "USD/Mtok"
);
unit!(
    /// Decimal gigabytes (1e9 bytes), as GPU datasheets count memory.
    Gigabytes,
    "GB"
);
unit!(
    /// Decimal gigabytes per second (memory or interconnect bandwidth).
    GigabytesPerSec,
    "GB/s"
);
unit!(
    /// Peak dense throughput in 1e12 operations per second (TFLOPS, or TOPS for int8).
    Tflops,
    "TFLOPS"
);
unit!(
    /// Electrical power.
    Watts,
    "W"
);
unit!(
    /// A byte count that may be fractional (bytes per token of a KV cache with int4, say).
    Bytes,
    "B"
);
unit!(
    /// A count of floating-point operations.
    Flops,
    "FLOP"
);
unit!(
    /// A percentage (0..=100): GPU utilisation, KV-cache usage.
    Percent,
    "%"
);

impl Millis {
    /// From a wall-clock duration.
    pub fn from_duration(d: Duration) -> Millis {
        Millis(d.as_secs_f64() * 1e3)
    }
    /// As a wall-clock duration (negative values clamp to zero).
    pub fn to_duration(self) -> Duration {
        Duration::from_secs_f64((self.0 / 1e3).max(0.0))
    }
    /// In seconds.
    pub fn secs(self) -> f64 {
        self.0 / 1e3
    }
}

/// Why a latency could not be read: the caller words the message (an SLO names the whole
/// objective, a flag its name), so the cases stay apart.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LatencyError {
    /// A positive number without a unit: milliseconds or seconds is the user's to say.
    #[error("{0} has no unit")]
    NoUnit(f64),
    #[error("'{0}' is not a number with a unit")]
    NotANumberWithUnit(String),
    #[error("'{0}' is not a number")]
    NotANumber(String),
    #[error("it must be positive")]
    NotPositive,
}

impl std::str::FromStr for Millis {
    type Err = LatencyError;
    /// A positive latency with its unit: `200ms`, `1.5s`, `800us` (or `µs`).
    fn from_str(text: &str) -> Result<Millis, LatencyError> {
        let text = text.trim().to_ascii_lowercase();
        let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = text.strip_suffix("us").or_else(|| text.strip_suffix("µs")) {
            (n, 1e-3)
        } else if let Some(n) = text.strip_suffix('s') {
            (n, 1e3)
        } else {
            return Err(
                match text
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0)
                {
                    Some(v) => LatencyError::NoUnit(v),
                    None => LatencyError::NotANumberWithUnit(text),
                },
            );
        };
        let value: f64 = number
            .trim()
            .parse()
            .map_err(|_| LatencyError::NotANumber(number.to_string()))?;
        if !(value.is_finite() && value > 0.0) {
            return Err(LatencyError::NotPositive);
        }
        Ok(Millis(value * scale))
    }
}

impl std::str::FromStr for RequestsPerSec {
    type Err = crate::validate::InvalidValue;
    /// A finite positive rate: `10/s`, `10rps` or `10` ([`crate::validate::rate_text`], which
    /// names the flag when a command parses one).
    fn from_str(text: &str) -> Result<RequestsPerSec, Self::Err> {
        crate::validate::rate_text("rate", text)
    }
}

impl Gigabytes {
    /// From a byte count.
    pub fn from_bytes(b: Bytes) -> Gigabytes {
        Gigabytes(b.0 / 1e9)
    }
    /// As a byte count.
    pub fn bytes(self) -> Bytes {
        Bytes(self.0 * 1e9)
    }
}

/// A token count (an input or output length).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Tokens(pub u64);

impl fmt::Display for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} tokens", self.0)
    }
}

/// Request lengths assumed where a user gives none (`pilot predict`, `pilot recommend`): the
/// means of the fmperf production histogram (computed by `pilot dataset` from
/// ../shared/data/workloads/fmperf_histogram.csv).
pub const DEFAULT_INPUT_TOKENS: Tokens = Tokens(512);
/// See [`DEFAULT_INPUT_TOKENS`].
pub const DEFAULT_OUTPUT_TOKENS: Tokens = Tokens(256);

/// The numeric format of weights or of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    F16,
    Bf16,
    Fp8,
    Int8,
    Int4,
}

impl Dtype {
    /// Every dtype pilot knows, widest first.
    pub const ALL: [Dtype; 6] = [
        Dtype::F32,
        Dtype::F16,
        Dtype::Bf16,
        Dtype::Fp8,
        Dtype::Int8,
        Dtype::Int4,
    ];

    /// Storage per element in bytes (int4 packs two per byte).
    pub fn bytes(self) -> f64 {
        match self {
            Dtype::F32 => 4.0,
            Dtype::F16 | Dtype::Bf16 => 2.0,
            Dtype::Fp8 | Dtype::Int8 => 1.0,
            Dtype::Int4 => 0.5,
        }
    }

    /// The short name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "fp16",
            Dtype::Bf16 => "bf16",
            Dtype::Fp8 => "fp8",
            Dtype::Int8 => "int8",
            Dtype::Int4 => "int4",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dtype {
    type Err = String;
    /// Accepts pilot's names and Hugging Face's `torch_dtype` spellings.
    fn from_str(s: &str) -> Result<Dtype, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" | "float" => Dtype::F32,
            "f16" | "fp16" | "float16" | "half" => Dtype::F16,
            "bf16" | "bfloat16" => Dtype::Bf16,
            "fp8" | "f8" | "float8" | "e4m3" => Dtype::Fp8,
            "int8" | "i8" | "w8a8" => Dtype::Int8,
            "int4" | "i4" | "w4a16" | "awq" | "gptq" => Dtype::Int4,
            other => {
                return Err(format!(
                    "unknown dtype '{}': use one of f32, fp16, bf16, fp8, int8, int4",
                    crate::validate::shorten(other)
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_and_rates_parse_with_their_units() {
        assert_eq!("200ms".parse::<Millis>(), Ok(Millis(200.0)));
        assert_eq!(" 1.5S ".parse::<Millis>(), Ok(Millis(1500.0)));
        assert_eq!("800us".parse::<Millis>(), Ok(Millis(0.8)));
        assert_eq!("200".parse::<Millis>(), Err(LatencyError::NoUnit(200.0)));
        assert_eq!("-1ms".parse::<Millis>(), Err(LatencyError::NotPositive));
        assert!(matches!(
            "fastms".parse::<Millis>(),
            Err(LatencyError::NotANumber(_))
        ));
        assert_eq!(
            "12/s".parse::<RequestsPerSec>().unwrap(),
            RequestsPerSec(12.0)
        );
        for bad in ["0", "inf", "-3/s", "x"] {
            assert!(bad.parse::<RequestsPerSec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn millis_round_trips_through_duration() {
        let m = Millis(12.5);
        assert_eq!(Millis::from_duration(m.to_duration()), m);
        assert_eq!(m.secs(), 0.0125);
    }

    #[test]
    fn dtype_parses_hf_spellings_and_rejects_junk() {
        assert_eq!("bfloat16".parse::<Dtype>().unwrap(), Dtype::Bf16);
        assert_eq!("FP8".parse::<Dtype>().unwrap(), Dtype::Fp8);
        let err = "fp7".parse::<Dtype>().unwrap_err();
        assert!(err.contains("fp7") && err.contains("int4"), "{err}");
        for d in Dtype::ALL {
            assert_eq!(d.name().parse::<Dtype>().unwrap(), d);
        }
    }

    #[test]
    fn gigabytes_convert_to_bytes() {
        assert_eq!(Gigabytes(2.0).bytes(), Bytes(2e9));
        assert_eq!(Gigabytes::from_bytes(Bytes(5e8)), Gigabytes(0.5));
    }
}
