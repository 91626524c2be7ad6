//! Free space of the file system that holds the backup directory (`statvfs`), for `--status`'s
//! warning and metrics and for `--expire`'s report. A backup that fills its disk stops; this is
//! how an operator hears about it before it does.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::Serialize;

use crate::storage::error::{ChainError, Result};

/// Sizes of one file system, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FsSpace {
    pub size_bytes: u64,
    /// What an unprivileged writer can still use (`f_bavail`): the figure that matters, since
    /// root's reserved blocks do not help a streamer running as another user.
    pub available_bytes: u64,
}

impl FsSpace {
    /// Available space as a percentage of the file system's size.
    pub fn available_percent(&self) -> f64 {
        if self.size_bytes == 0 {
            return 0.0;
        }
        self.available_bytes as f64 * 100.0 / self.size_bytes as f64
    }
}

pub fn of(path: &Path) -> Result<FsSpace> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        ChainError::Usage(format!("path \"{}\" contains a NUL byte", path.display()))
    })?;
    // SAFETY: statvfs fills the struct we pass and reads only the NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(ChainError::io(
            format!(
                "could not get the free space of the file system of \"{}\"",
                path.display()
            ),
            std::io::Error::last_os_error(),
        ));
    }
    let unit = st.f_frsize as u64;
    Ok(FsSpace {
        size_bytes: (st.f_blocks as u64).saturating_mul(unit),
        available_bytes: (st.f_bavail as u64).saturating_mul(unit),
    })
}

/// `--free-warn`: warn when the available space falls below a share of the file system or
/// below a size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FreeThreshold {
    Percent(f64),
    Bytes(u64),
}

impl Default for FreeThreshold {
    fn default() -> Self {
        FreeThreshold::Percent(10.0)
    }
}

impl Eq for FreeThreshold {}

impl FreeThreshold {
    pub fn is_low(&self, s: &FsSpace) -> bool {
        match *self {
            FreeThreshold::Percent(p) => s.available_percent() < p,
            FreeThreshold::Bytes(b) => s.available_bytes < b,
        }
    }

    pub fn describe(&self) -> String {
        match *self {
            FreeThreshold::Percent(p) => format!("{p}%"),
            FreeThreshold::Bytes(b) => crate::ui::size(b),
        }
    }

    /// The threshold in bytes for a file system of this size (for metrics).
    pub fn bytes_for(&self, s: &FsSpace) -> u64 {
        match *self {
            FreeThreshold::Percent(p) => (s.size_bytes as f64 * p / 100.0) as u64,
            FreeThreshold::Bytes(b) => b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_file_system() {
        let s = of(Path::new("/")).unwrap();
        assert!(
            s.size_bytes > 0 && s.available_bytes <= s.size_bytes,
            "{s:?}"
        );
        assert!(of(Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn thresholds() {
        let s = FsSpace {
            size_bytes: 1000,
            available_bytes: 50,
        };
        assert!(FreeThreshold::Percent(10.0).is_low(&s));
        assert!(!FreeThreshold::Percent(5.0).is_low(&s));
        assert!(FreeThreshold::Bytes(51).is_low(&s));
        assert_eq!(FreeThreshold::Percent(10.0).bytes_for(&s), 100);
        assert_eq!(FreeThreshold::Percent(10.0).describe(), "10%");
    }
}
