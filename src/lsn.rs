//! The PostgreSQL log sequence number: a 64-bit WAL position written `%X/%X` (upper and lower 32
//! bits in uppercase hex), shared by the diff format, the chain metadata and the replication client.

use std::fmt;
use std::str::FromStr;

/// A WAL position. Ordering is WAL order; `Lsn(0)` is PostgreSQL's `InvalidXLogRecPtr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const INVALID: Lsn = Lsn(0);

    pub fn is_valid(self) -> bool {
        self.0 != 0
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Self {
        Lsn(v)
    }
}

impl From<Lsn> for u64 {
    fn from(l: Lsn) -> Self {
        l.0
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// The text was not a `%X/%X` WAL position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseLsnError(pub String);

impl fmt::Display for ParseLsnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid input syntax for type pg_lsn: \"{}\"", self.0)
    }
}

impl std::error::Error for ParseLsnError {}

impl FromStr for Lsn {
    type Err = ParseLsnError;

    /// Accepts what PostgreSQL's `pg_lsn_in` accepts: 1–8 hex digits (either case), a slash,
    /// 1–8 hex digits. No sign, no spaces, so a stray character in a file is never read as a
    /// position.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseLsnError(s.to_string());
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        let half = |p: &str| -> Result<u64, ParseLsnError> {
            if p.is_empty() || p.len() > 8 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            u64::from_str_radix(p, 16).map_err(|_| err())
        };
        Ok(Lsn((half(hi)? << 32) | half(lo)?))
    }
}

// In metadata.json an LSN is the string PostgreSQL prints, so a human can paste it into SQL.
impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_postgres() {
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert_eq!(Lsn(0x1A2B3C4).to_string(), "0/1A2B3C4");
        assert_eq!(Lsn(0x0000_0001_0000_00FF).to_string(), "1/FF");
        assert_eq!(Lsn(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
    }

    #[test]
    fn parses_and_round_trips() {
        for v in [
            0u64,
            1,
            0x1A2B3C4,
            0x1_0000_0000,
            u64::MAX,
            0xDEAD_BEEF_0000_0001,
        ] {
            let l = Lsn(v);
            assert_eq!(l.to_string().parse::<Lsn>().unwrap(), l);
        }
        assert_eq!("0/1a2b3c4".parse::<Lsn>().unwrap(), Lsn(0x1A2B3C4));
        assert_eq!("00000000/00000010".parse::<Lsn>().unwrap(), Lsn(16));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "0",
            "0/0/0",
            "+1/0",
            "0/-1",
            " 0/1",
            "0/1 ",
            "123456789/0",
            "0/123456789",
            "g/0",
            "0x1/0",
        ] {
            let e = bad.parse::<Lsn>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("invalid input syntax for type pg_lsn: \"{bad}\"")
            );
        }
    }

    #[test]
    fn orders_by_wal_position() {
        let a: Lsn = "0/FFFFFFFF".parse().unwrap();
        let b: Lsn = "1/0".parse().unwrap();
        assert!(a < b);
        assert!(!Lsn::INVALID.is_valid());
    }

    #[test]
    fn serde_as_string() {
        let j = serde_json::to_string(&Lsn(0x1_0000_00AB)).unwrap();
        assert_eq!(j, "\"1/AB\"");
        assert_eq!(serde_json::from_str::<Lsn>(&j).unwrap(), Lsn(0x1_0000_00AB));
        assert!(serde_json::from_str::<Lsn>("\"nope\"").is_err());
    }
}
