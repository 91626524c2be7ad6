//! The man page `pg_scribe.1` and the bash, zsh and fish completions, generated from the same
//! clap definition the parser uses (`cli::documented_command`), by clap_mangen and
//! clap_complete, so that they cannot drift from what the parser accepts. `make build` writes
//! them with the hidden `pg_scribe --generate KIND`; `make install` installs them.

use std::io::Write;

use clap_complete::Shell;

use crate::cli;
use crate::error::{Error, Result};

/// The text for `kind`: `man`, `bash`, `zsh` or `fish`.
pub fn generate(kind: &str) -> Result<Vec<u8>> {
    let mut cmd = cli::documented_command();
    let mut out = Vec::new();
    let shell = match kind {
        "man" => {
            man_page(cmd, &mut out).map_err(|e| Error::backup(format!("man page: {e}")))?;
            return Ok(out);
        }
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        other => {
            return Err(Error::usage(format!(
                "invalid --generate value \"{other}\" (expected man, bash, zsh or fish)"
            )));
        }
    };
    clap_complete::generate(shell, &mut cmd, "pg_scribe", &mut out);
    Ok(out)
}

/// roff for literal text: backslashes, and hyphens as the minus signs options are written with.
fn roff_text(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

fn man_page(cmd: clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd)
        .title("PG_SCRIBE")
        .section("1")
        .source(format!("pg_scribe {}", cli::VERSION))
        .manual("pg_scribe Manual");
    man.render_title(out)?;
    man.render_name_section(out)?;

    // Option names must not be hyphenated or justified apart.
    writeln!(out, ".SH SYNOPSIS\n.nh\n.ad l")?;
    for (i, (action, rest)) in cli::synopsis().iter().enumerate() {
        if i > 0 {
            writeln!(out, ".br")?;
        }
        writeln!(
            out,
            "\\fBpg_scribe\\fR \\fB{}\\fR {}",
            roff_text(action),
            roff_text(rest)
        )?;
    }

    writeln!(out, ".ad b\n.hy")?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;

    for (heading, paragraphs) in cli::MAN_SECTIONS {
        writeln!(out, ".SH \"{heading}\"")?;
        for paragraph in *paragraphs {
            writeln!(out, ".PP")?;
            writeln!(out, "{}", roff_text(paragraph))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kind_is_a_usage_error() {
        let err = generate("tcsh").unwrap_err();
        assert_eq!(err.exit_code(), 5);
        assert!(err.message.contains("\"tcsh\""), "{}", err.message);
    }

    #[test]
    fn roff_escapes() {
        assert_eq!(roff_text("--a\\b"), "\\-\\-a\\eb");
    }
}
