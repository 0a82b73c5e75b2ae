//! Sizes (`64G`, `512M`) and durations (`90m`, `24h`, `2d`) as people write
//! them in commands and config, parsed once into typed values.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    #[error("`{0}` is not a size: write a number and a unit, like 512M, 64G or 1T")]
    Size(String),
    #[error("`{0}` is not a duration: write a number and a unit, like 30s, 90m, 24h or 2d")]
    Duration(String),
}

/// A number of bytes. Binary multiples: `1G` is 1 GiB, as `docker run -m 1g`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const GIB: u64 = 1 << 30;

    pub fn parse(input: &str) -> Result<Self, UnitError> {
        let err = || UnitError::Size(input.to_string());
        let s = input.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().map_err(|_| err())?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            "t" | "tb" | "tib" => 40,
            _ => return Err(err()),
        };
        n.checked_mul(1u64 << shift)
            .filter(|b| *b > 0 && *b <= i64::MAX as u64)
            .map(ByteSize)
            .ok_or_else(err)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [(40, "T"), (30, "G"), (20, "M"), (10, "K")];
        for (shift, unit) in UNITS {
            let size = 1u64 << shift;
            if self.0 >= size {
                return if self.0.is_multiple_of(size) {
                    write!(f, "{}{unit}", self.0 / size)
                } else {
                    write!(f, "{:.1}{unit}", self.0 as f64 / size as f64)
                };
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// As a number of bytes: exact, where the short form (`1.5G`) rounds.
impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) if n > 0 => Ok(ByteSize(n)),
            Raw::Int(n) => Err(serde::de::Error::custom(UnitError::Size(n.to_string()))),
            Raw::Text(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// A duration written `30s`, `90m`, `24h`, `2d` or `1w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl Span {
    /// Nothing a person means lasts a century; larger values are typos (and
    /// would overflow date arithmetic).
    pub const MAX: Duration = Duration::from_secs(100 * 365 * 86_400);

    pub fn from_secs(secs: u64) -> Self {
        Span(Duration::from_secs(secs).min(Span::MAX))
    }

    pub fn parse(input: &str) -> Result<Self, UnitError> {
        let err = || UnitError::Duration(input.to_string());
        let s = input.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().map_err(|_| err())?;
        let unit_secs = match unit.trim().to_ascii_lowercase().as_str() {
            "ms" => {
                return Some(Duration::from_millis(n))
                    .filter(|d| !d.is_zero() && *d < Span::MAX)
                    .map(Span)
                    .ok_or_else(err)
            }
            "s" | "sec" | "secs" => 1,
            "m" | "min" | "mins" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            _ => return Err(err()),
        };
        n.checked_mul(unit_secs)
            .filter(|s| *s > 0 && *s < Span::MAX.as_secs())
            .map(|s| Span(Duration::from_secs(s)))
            .ok_or_else(err)
    }

    pub fn duration(self) -> Duration {
        self.0
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        if self.0.subsec_millis() != 0 {
            return write!(f, "{}ms", self.0.as_millis());
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if secs >= size && secs.is_multiple_of(size) {
                return write!(f, "{}{unit}", secs / size);
            }
        }
        if secs == 0 {
            write!(f, "{}ms", self.0.as_millis())
        } else {
            write!(f, "{secs}s")
        }
    }
}

/// As the text it parses from (`24h`), so a round trip is exact.
impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary_multiples() {
        assert_eq!(ByteSize::parse("2G").unwrap().bytes(), 2 * ByteSize::GIB);
        assert_eq!(ByteSize::parse("512M").unwrap().bytes(), 512 << 20);
        assert_eq!(ByteSize::parse("64GiB").unwrap().bytes(), 64 << 30);
        assert_eq!(ByteSize(3 << 30).to_string(), "3G");
        assert_eq!(ByteSize::parse("4096").unwrap().bytes(), 4096);
        assert_eq!(ByteSize::parse("512K").unwrap().bytes(), 512 << 10);
        for bad in ["", "G", "2X", "-1G", "0G", "99999999999T"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(Span::parse("90m").unwrap().duration().as_secs(), 5400);
        assert_eq!(Span::parse("2d").unwrap().to_string(), "2d");
        assert_eq!(Span::parse("36h").unwrap().to_string(), "36h");
        assert_eq!(Span::parse("1500ms").unwrap().to_string(), "1500ms");
        assert_eq!(Span::parse("30s").unwrap().to_string(), "30s");
        for bad in ["", "h", "3y", "0h", "1.5h", "9000000000000ms", "99999999d"] {
            assert!(Span::parse(bad).is_err(), "{bad} parsed");
        }
    }
}
