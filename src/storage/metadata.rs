//! `chain-<ID>/metadata.json`: what a chain's base was taken from and where its stream starts,
//! enough for `--restore --create` to rebuild a matching database and for `--status` and restore
//! to verify the files (size and SHA-256 of each).

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::lsn::Lsn;
use crate::storage::compress::Compression;
use crate::storage::durable;
use crate::storage::error::{ChainError, Result};

/// Bumped when a field changes meaning; readers refuse a newer format. Format 2 added
/// directory-format bases (`base_format`); a chain with a plain base is still written as format
/// 1, so older pg_scribe versions keep reading it, while they refuse a directory base instead of
/// missing its `base.sql`.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// How the chain's base was taken (doc/file-handling.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseFormat {
    /// `base.sql[.ext]`: one plain SQL script from `pg_dump --format=plain`.
    #[default]
    Plain,
    /// `base.dir/`: `pg_dump --format=directory`, taken and restored with parallel jobs; each
    /// of its files is listed in `files` as `base.dir/<name>`.
    Directory,
}

impl BaseFormat {
    /// The metadata format a chain with this base is written in (see [`FORMAT_VERSION`]).
    pub fn metadata_format(self) -> u32 {
        match self {
            BaseFormat::Plain => 1,
            BaseFormat::Directory => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub name: String,
    pub version: String,
}

/// One file of the chain's base, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Name inside the chain directory, e.g. `base.sql.zst`.
    pub name: String,
    /// Bytes on disk (compressed).
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes on disk (`sha256sum` output).
    pub sha256: String,
}

/// The database the base was taken from, as its server described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `server_version`, e.g. `15.20 (Debian 15.20-1.pgdg120+1)`.
    pub server_version: String,
    /// `server_version_num`, e.g. 150020.
    pub server_version_num: u32,
    pub database: String,
    pub encoding: String,
    pub lc_collate: String,
    pub lc_ctype: String,
    /// `c`, `i` or `b` (pg_database.datlocprovider), when the server has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icu_locale: Option<String>,
    pub extensions: Vec<Extension>,
}

impl Source {
    pub fn server_major(&self) -> u32 {
        self.server_version_num / 10000
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub format: u32,
    pub pg_scribe_version: String,
    pub chain_id: String,
    /// Written in line with the other fields (the file's layout predates the grouping).
    #[serde(flatten)]
    pub source: Source,
    pub slot: String,
    /// The slot's consistent point: the chain holds exactly the transactions with
    /// `commit_lsn >= start_lsn`; the base holds the others.
    pub start_lsn: Lsn,
    /// A string because it exceeds the integers JSON tools handle exactly (2^53).
    pub system_identifier: String,
    pub timeline: u32,
    pub compression: Compression,
    /// Absent in files written before directory bases existed: plain.
    #[serde(default, skip_serializing_if = "is_plain")]
    pub base_format: BaseFormat,
    pub files: Vec<FileRecord>,
    /// Every differential of this chain is sealed with a manifest (see `manifest`); false for
    /// chains created before manifests existed, whose older differentials have none.
    #[serde(default)]
    pub manifests: bool,
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

fn is_plain(f: &BaseFormat) -> bool {
    *f == BaseFormat::Plain
}

impl Metadata {
    pub fn file(&self, name: &str) -> Option<&FileRecord> {
        self.files.iter().find(|f| f.name == name)
    }

    pub(crate) fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("metadata always serializes");
        s.push('\n');
        s
    }

    /// Writes atomically (temp + fsync + rename + directory fsync), mode 0600.
    pub fn write(&self, path: &Path) -> Result<()> {
        durable::atomic_write(path, self.to_json().as_bytes())
    }

    pub fn read(path: &Path) -> Result<Metadata> {
        let text = std::fs::read(path).map_err(|e| ChainError::file("read", path, e))?;
        let m: Metadata = serde_json::from_slice(&text).map_err(|e| ChainError::Metadata {
            path: path.into(),
            source: e,
        })?;
        if m.format > FORMAT_VERSION {
            return Err(ChainError::Usage(format!(
                "metadata file \"{}\" has format {}, but this pg_scribe reads format {FORMAT_VERSION} or older",
                path.display(),
                m.format
            )));
        }
        Ok(m)
    }
}

/// `created_at` as RFC 3339 UTC text, readable by humans and `jq`.
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub(crate) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let t = t.to_offset(time::UtcOffset::UTC);
        s.serialize_str(&t.format(&Rfc3339).map_err(serde::ser::Error::custom)?)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        OffsetDateTime::parse(&s, &Rfc3339).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::datetime;

    pub(crate) fn sample() -> Metadata {
        Metadata {
            format: 1,
            pg_scribe_version: "0.1.0".into(),
            chain_id: "20231215T120000Z".into(),
            source: Source {
                server_version: "15.20 (Debian 15.20-1.pgdg120+1)".into(),
                server_version_num: 150020,
                database: "mydb".into(),
                encoding: "UTF8".into(),
                lc_collate: "en_US.UTF-8".into(),
                lc_ctype: "en_US.UTF-8".into(),
                locale_provider: Some("c".into()),
                icu_locale: None,
                extensions: vec![
                    Extension {
                        name: "plpgsql".into(),
                        version: "1.0".into(),
                    },
                    Extension {
                        name: "wal2sql".into(),
                        version: "0.1".into(),
                    },
                ],
            },
            slot: "pg_scribe".into(),
            start_lsn: "0/1234567".parse().unwrap(),
            system_identifier: "7312345678901234567".into(),
            timeline: 1,
            compression: "zstd:9".parse().unwrap(),
            base_format: BaseFormat::Plain,
            files: vec![FileRecord {
                name: "base.sql.zst".into(),
                size: 42,
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
            }],
            manifests: true,
            created_at: datetime!(2023-12-15 12:00:00.5 UTC),
        }
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metadata.json");
        let m = sample();
        m.write(&p).unwrap();
        assert_eq!(Metadata::read(&p).unwrap(), m);
        assert_eq!(durable::mode_of(&p).unwrap(), 0o600);
        assert_eq!(m.file("base.sql.zst").unwrap().size, 42);
    }

    #[test]
    fn json_is_stable_and_readable() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(v["start_lsn"], "0/1234567");
        assert_eq!(v["compression"], "zstd:9");
        assert_eq!(v["created_at"], "2023-12-15T12:00:00.5Z");
        assert_eq!(v["system_identifier"], "7312345678901234567");
        assert_eq!(v["extensions"][1]["name"], "wal2sql");
        assert!(v.get("icu_locale").is_none());
        // The source facts stay top-level fields, as files written before the grouping have them.
        assert_eq!(v["database"], "mydb");
        assert!(v.get("source").is_none());
        // A plain base keeps format 1's shape, which older versions read.
        assert!(v.get("base_format").is_none());
        let mut dir = sample();
        dir.base_format = BaseFormat::Directory;
        dir.format = BaseFormat::Directory.metadata_format();
        let v: serde_json::Value = serde_json::from_str(&dir.to_json()).unwrap();
        assert_eq!(v["base_format"], "directory");
        assert_eq!(v["format"], 2);
    }

    #[test]
    fn reading_reports_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metadata.json");
        std::fs::write(&p, "{").unwrap();
        let e = Metadata::read(&p).unwrap_err();
        assert!(e.to_string().starts_with("invalid metadata file \""), "{e}");
        let mut newer = serde_json::to_value(sample()).unwrap();
        newer["format"] = 99.into();
        newer["some_future_field"] = true.into();
        std::fs::write(&p, newer.to_string()).unwrap();
        assert!(
            Metadata::read(&p)
                .unwrap_err()
                .to_string()
                .contains("format 99")
        );
        let e = Metadata::read(&dir.path().join("none.json")).unwrap_err();
        assert!(e.to_string().starts_with("could not read file"), "{e}");
    }
}
