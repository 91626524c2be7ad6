//! systemd's readiness protocol (sd_notify) for `Type=notify` units: one datagram per state
//! change on the socket named by `NOTIFY_SOCKET` (a path, or `@name` in the abstract
//! namespace). A dozen lines of std, so no crate: the protocol is `KEY=value` lines in a
//! datagram, nothing more (systemd's sd_notify(3)).
//!
//! What the streamer says (doc/operations.md): `READY=1` once the server has accepted
//! START_REPLICATION, `STATUS=` with the durable position, `STOPPING=1` on SIGTERM/SIGINT, and
//! `WATCHDOG=1` at half the `WATCHDOG_USEC` interval when the unit sets `WatchdogSec=`. All of it
//! is best effort: a notification that cannot be sent never stops the backup.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier systemd asked for, if any.
    pub fn from_env() -> Option<Notifier> {
        let target = std::env::var_os("NOTIFY_SOCKET")?;
        let target = target.to_str()?;
        let addr = if let Some(name) = target.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes()).ok()?
        } else if target.starts_with('/') {
            SocketAddr::from_pathname(target).ok()?
        } else {
            tracing::debug!("NOTIFY_SOCKET {target:?} is neither a path nor @abstract; ignored");
            return None;
        };
        let socket = match UnixDatagram::unbound() {
            Ok(s) => s,
            Err(err) => {
                tracing::debug!("could not create the notification socket: {err}");
                return None;
            }
        };
        // WATCHDOG_PID, when set, names the process the watchdog is meant for.
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us)
            .map(Duration::from_micros);
        Some(Notifier {
            socket,
            addr,
            watchdog,
        })
    }

    /// How often to send `WATCHDOG=1`: half the interval systemd gave, as sd_watchdog_enabled(3)
    /// advises, so one late tick is not a kill.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog.map(|d| (d / 2).max(Duration::from_millis(1)))
    }

    pub fn send(&self, message: &str) {
        if let Err(err) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::debug!("could not notify systemd ({message:?}): {err}");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!(
            "READY=1\nMAINPID={}\nSTATUS={}",
            std::process::id(),
            one_line(status)
        ));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }
}

/// A newline would start a new assignment in the datagram.
fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            addr: SocketAddr::from_pathname(&path).unwrap(),
            watchdog: Some(Duration::from_secs(10)),
        };
        n.status("durable up to 0/10\nx");
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=durable up to 0/10 x");
        assert_eq!(n.watchdog_every(), Some(Duration::from_secs(5)));
    }
}
