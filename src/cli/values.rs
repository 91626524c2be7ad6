//! Checks of single option values: slot names, ports, intervals, sizes, durations, chain IDs
//! and `--up-to` points. Each failure is a usage error naming the value as typed.

use std::time::Duration;

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::storage::backup_dir::ChainId;
use crate::storage::diff_format::StopAt;
use crate::storage::space::FreeThreshold;
use crate::streamer::RotateEvery;

/// PostgreSQL's rule for slot names (ReplicationSlotValidateName).
pub(crate) fn check_slot_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::usage("replication slot name must not be empty"));
    }
    if name.len() > 63 {
        return Err(Error::usage(format!(
            "replication slot name \"{name}\" is too long (at most 63 bytes)"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Error::usage(format!(
            "replication slot name \"{name}\" contains invalid character (only lower case letters, numbers and the underscore are allowed)"
        )));
    }
    Ok(())
}

pub(crate) fn check_port(text: &str) -> Result<()> {
    for part in text.split(',') {
        match part.trim().parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => {}
            _ => return Err(Error::usage(format!("invalid port number: \"{text}\""))),
        }
    }
    Ok(())
}

/// The most parallel jobs accepted: each is a server connection (pg_dump and pg_restore add
/// one of their own), so more than this is a typo rather than a plan.
pub(crate) const MAX_JOBS: u32 = 1024;

/// `--jobs`: a whole number of parallel pg_dump or pg_restore jobs, 1 to [`MAX_JOBS`].
pub(crate) fn parse_jobs(text: &str) -> Result<u32> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_JOBS).contains(&n) => Ok(n),
        _ => Err(Error::usage(format!(
            "invalid --jobs value \"{text}\" (expected a whole number from 1 to {MAX_JOBS})"
        ))),
    }
}

pub(crate) fn seconds(what: &str, text: Option<&str>, default: u64) -> Result<Duration> {
    match text {
        None => Ok(Duration::from_secs(default)),
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n) => Ok(Duration::from_secs(n.into())),
            Err(_) => Err(Error::usage(format!("invalid {what} \"{text}\""))),
        },
    }
}

/// A size as PostgreSQL writes them: a number and an optional unit `B`, `kB`, `MB`, `GB`, `TB`
/// (any case, powers of 1024, a space allowed between); a bare number is bytes.
pub(crate) fn parse_size(option: &str, text: &str) -> Result<u64> {
    let bad = || {
        Error::usage(format!(
            "invalid {option} value \"{text}\" (expected a size like 512MB or 10GB)"
        ))
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        _ => return Err(bad()),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = value * factor as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

/// A duration with a unit: `s`, `min`, `h`, `d` (PostgreSQL's names; `90s`, `30min`, `7d`).
/// A unit is required: a bare `7` is too easy to mean days and be read as seconds.
pub(crate) fn parse_duration(option: &str, text: &str) -> Result<Duration> {
    let bad = || {
        Error::usage(format!(
            "invalid {option} value \"{text}\" (expected a duration with a unit s, min, h or d, like 36h or 7d)"
        ))
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: u64 = match unit.trim() {
        "s" => 1,
        "min" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    let value: u64 = number.parse().map_err(|_| bad())?;
    value
        .checked_mul(factor)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// `--rotate-every`: a duration (`15min`, `1h`), a size (`256MB`), or one of each separated by
/// a comma (`1h,256MB`: whichever is reached first seals). A size needs its `B` (`10m` could be
/// minutes or megabytes), and neither may be zero.
pub(crate) fn parse_rotate_every(text: &str) -> Result<RotateEvery> {
    let bad = || {
        Error::usage(format!(
            "invalid --rotate-every value \"{text}\" (expected a duration like 15min or 1h, a size like 256MB, or one of each like 1h,256MB)"
        ))
    };
    let mut every = RotateEvery::default();
    for part in text.split(',').map(str::trim) {
        if let Ok(interval) = parse_duration("--rotate-every", part) {
            if interval.is_zero() || every.interval.replace(interval).is_some() {
                return Err(bad());
            }
        } else if part.to_ascii_lowercase().ends_with('b')
            && let Ok(size) = parse_size("--rotate-every", part)
        {
            if size == 0 || every.size.replace(size).is_some() {
                return Err(bad());
            }
        } else {
            return Err(bad());
        }
    }
    Ok(every)
}

/// `--free-warn`: `10%` of the file system, or a size like `20GB`.
pub(crate) fn parse_free(text: &str) -> Result<FreeThreshold> {
    if let Some(p) = text.trim().strip_suffix('%') {
        return match p.trim().parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => Ok(FreeThreshold::Percent(v)),
            _ => Err(Error::usage(format!(
                "invalid --free-warn value \"{text}\" (expected a percentage like 10% or a size like 20GB)"
            ))),
        };
    }
    parse_size("--free-warn", text).map(FreeThreshold::Bytes)
}

pub(crate) fn parse_chain_id(id: &str) -> Result<ChainId> {
    id.parse::<ChainId>().map_err(|_| {
        Error::usage(format!(
            "invalid chain ID \"{id}\" (expected YYYYMMDDTHHMMSSZ, e.g. 20231215T120000Z)"
        ))
    })
}

/// `--up-to`: an LSN `X/Y`, or a timestamp `YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]]` with an optional
/// UTC offset (`Z`, `+02`, `+02:00`); a timestamp without an offset is UTC, like chain IDs.
pub(crate) fn parse_up_to(text: &str) -> Result<StopAt> {
    let bad = || {
        Error::usage(format!(
            "invalid --up-to value \"{text}\" (expected a timestamp like \"2023-12-16 08:30:00+00\" or an LSN like \"0/1A2B3C4\")"
        ))
    };
    if text.contains('/') {
        return text.parse::<Lsn>().map(StopAt::Lsn).map_err(|_| bad());
    }
    parse_timestamp(text.trim())
        .map(StopAt::Time)
        .ok_or_else(bad)
}

fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    use time::macros::format_description;
    let text = text.replacen(' ', "T", 1);
    // Split an offset off the end: Z, +HH, +HH:MM, -HHMM.
    let (local, offset) = if let Some(stripped) = text.strip_suffix('Z') {
        (stripped.to_string(), time::UtcOffset::UTC)
    } else {
        let date_len = 10.min(text.len());
        match text[date_len..].rfind(['+', '-']) {
            Some(pos) => {
                let pos = pos + date_len;
                let sign = if &text[pos..pos + 1] == "-" { -1 } else { 1 };
                let digits: String = text[pos + 1..].chars().filter(|c| *c != ':').collect();
                if !(digits.len() == 2 || digits.len() == 4)
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                let hours: i8 = digits[..2].parse().ok()?;
                let minutes: i8 = if digits.len() == 4 {
                    digits[2..].parse().ok()?
                } else {
                    0
                };
                let offset = time::UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?;
                (text[..pos].to_string(), offset)
            }
            None => (text.clone(), time::UtcOffset::UTC),
        }
    };
    let formats = [
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ];
    let parsed = formats
        .iter()
        .find_map(|f| time::PrimitiveDateTime::parse(&local, f).ok())
        .or_else(|| {
            time::Date::parse(&local, format_description!("[year]-[month]-[day]"))
                .ok()
                .map(|d| d.midnight())
        })?;
    Some(parsed.assume_offset(offset))
}
