//! Where a password comes from when none was given: `~/.pgpass` (libpq's matching rules and
//! its refusal of a file others can read), or a prompt on the terminal.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::ui;

/// Split one `.pgpass` line into its five fields, undoing `\\` escapes; the password is the
/// fifth field up to the next unescaped colon.
fn pgpass_fields(line: &str) -> Option<[String; 5]> {
    let mut fields: Vec<String> = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut()?.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            ':' => break,
            c => fields.last_mut()?.push(c),
        }
    }
    fields.try_into().ok()
}

/// libpq's `.pgpass` rules: first matching line wins, `*` matches anything, `localhost` stands
/// for the default socket directory, and a file open to group or others is ignored (with a
/// warning, once).
pub(crate) fn pgpass_lookup(
    file: &std::path::Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() {
        warn_once(
            file,
            &format!("password file \"{}\" is not a plain file", file.display()),
        );
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        warn_once(
            file,
            &format!(
                "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                file.display()
            ),
        );
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let port = port.to_string();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(pgpass_fields)
        .find(|[h, p, d, u, _]| {
            let matches = |field: &str, value: &str| field == "*" || field == value;
            matches(h, host) && matches(p, &port) && matches(d, dbname) && matches(u, user)
        })
        .map(|[_, _, _, _, password]| password)
        .filter(|password| !password.is_empty())
}

fn warn_once(file: &std::path::Path, message: &str) {
    static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.iter().any(|p| p == file) {
        warned.push(file.to_path_buf());
        ui::warning(message);
    }
}

/// Ask for a password on the terminal without echo, as libpq's `-W` does.
pub(crate) fn prompt_password(prompt: &str) -> Result<String> {
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| {
            Error::connection(format!(
                "could not prompt for a password: {}",
                crate::error::io_reason(&e)
            ))
            .with_hint("Use ~/.pgpass or PGPASSWORD when no terminal is available.")
        })?;
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(&tty);
    // SAFETY: plain termios calls on a descriptor we own for the duration of the prompt.
    let saved = unsafe {
        let mut term: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut term) != 0 {
            None
        } else {
            let saved = term;
            term.c_lflag &= !libc::ECHO;
            libc::tcsetattr(fd, libc::TCSAFLUSH, &term);
            Some(saved)
        }
    };
    let mut writer = &tty;
    let _ = write!(writer, "{prompt}");
    let _ = writer.flush();
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if let Some(saved) = saved {
        // SAFETY: restores the settings read above.
        unsafe {
            libc::tcsetattr(fd, libc::TCSAFLUSH, &saved);
        }
    }
    let _ = writeln!(writer);
    read.map_err(|e| {
        Error::connection(format!(
            "could not read password: {}",
            crate::error::io_reason(&e)
        ))
    })?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
