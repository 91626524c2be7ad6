//! Replication commands on a [`ReplConn`]: IDENTIFY_SYSTEM, CREATE_REPLICATION_SLOT,
//! DROP_REPLICATION_SLOT, START_REPLICATION, and plain simple queries. The command text is built
//! by pure functions that quote for the replication grammar, which takes `"ident"` and
//! `'literal'` but not `E'…'`.

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::{backend, frontend};

use super::codec::Lsn;
use super::conn::{Frame, ReplConn, message_name, server_error};
use super::error::ReplicationError;
use super::stream::ReplicationStream;

type Result<T> = std::result::Result<T, ReplicationError>;

/// `"ident"` with `"` doubled. NUL cannot be sent at all.
pub fn quote_ident(s: &str) -> Result<String> {
    reject_nul(s)?;
    Ok(crate::pg::quote::ident(s))
}

/// `'literal'` with `'` doubled; backslashes are literal (standard_conforming_strings).
pub fn quote_literal(s: &str) -> Result<String> {
    reject_nul(s)?;
    Ok(crate::pg::quote::literal(s))
}

fn reject_nul(s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(ReplicationError::Config(format!(
            "{s:?} contains a NUL byte"
        )));
    }
    Ok(())
}

/// What CREATE_REPLICATION_SLOT does with the snapshot at the slot's consistent point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotAction {
    /// Export it; it stays importable (`SET TRANSACTION SNAPSHOT`) until the next command on
    /// this connection or until it closes.
    Export,
    /// Make it the snapshot of the current transaction (must be inside `BEGIN ISOLATION LEVEL
    /// REPEATABLE READ` on this connection).
    Use,
    Nothing,
}

/// The CREATE_REPLICATION_SLOT command for a logical slot, in the syntax the server version
/// understands: the option list on 15+, keywords on 10–14, nothing before 10 (where the
/// snapshot is always exported and TEMPORARY does not exist).
pub fn create_slot_command(
    slot: &str,
    plugin: &str,
    temporary: bool,
    snapshot: SnapshotAction,
    server_version_num: u32,
) -> Result<String> {
    let mut cmd = format!("CREATE_REPLICATION_SLOT {}", quote_ident(slot)?);
    if temporary {
        if server_version_num < 100000 {
            return Err(ReplicationError::Config(
                "temporary replication slots need PostgreSQL 10 or later".into(),
            ));
        }
        cmd.push_str(" TEMPORARY");
    }
    cmd.push_str(" LOGICAL ");
    cmd.push_str(&quote_ident(plugin)?);
    if server_version_num >= 150000 {
        let v = match snapshot {
            SnapshotAction::Export => "export",
            SnapshotAction::Use => "use",
            SnapshotAction::Nothing => "nothing",
        };
        cmd.push_str(&format!(" (SNAPSHOT '{v}')"));
    } else if server_version_num >= 100000 {
        cmd.push_str(match snapshot {
            SnapshotAction::Export => " EXPORT_SNAPSHOT",
            SnapshotAction::Use => " USE_SNAPSHOT",
            SnapshotAction::Nothing => " NOEXPORT_SNAPSHOT",
        });
    } else if snapshot != SnapshotAction::Export {
        return Err(ReplicationError::Config(
            "before PostgreSQL 10 a new slot always exports its snapshot".into(),
        ));
    }
    Ok(cmd)
}

/// `DROP_REPLICATION_SLOT "slot" [WAIT]`; WAIT (10+) waits for an active slot to be released
/// instead of failing with 55006.
pub fn drop_slot_command(slot: &str, wait: bool) -> Result<String> {
    let mut cmd = format!("DROP_REPLICATION_SLOT {}", quote_ident(slot)?);
    if wait {
        cmd.push_str(" WAIT");
    }
    Ok(cmd)
}

/// `START_REPLICATION SLOT "slot" LOGICAL X/Y ("name" 'value', ...)`. Unlike pg_recvlogical,
/// names and values are escaped, so any option value can be passed.
pub fn start_replication_command(
    slot: &str,
    start: Lsn,
    options: &[(&str, &str)],
) -> Result<String> {
    let mut cmd = format!(
        "START_REPLICATION SLOT {} LOGICAL {start}",
        quote_ident(slot)?
    );
    if !options.is_empty() {
        let opts = options
            .iter()
            .map(|(k, v)| Ok(format!("{} {}", quote_ident(k)?, quote_literal(v)?)))
            .collect::<Result<Vec<_>>>()?;
        cmd.push_str(&format!(" ({})", opts.join(", ")));
    }
    Ok(cmd)
}

/// The result of IDENTIFY_SYSTEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemIdentification {
    /// The cluster's system identifier (a 64-bit number, kept as text as the server sends it).
    pub systemid: String,
    pub timeline: u32,
    /// The current WAL flush position.
    pub xlogpos: Lsn,
    /// The database we are connected to; `None` on a physical replication connection.
    pub dbname: Option<String>,
}

/// The result of CREATE_REPLICATION_SLOT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    pub slot_name: String,
    /// The slot's consistent point: transactions committing at or after it are streamed; those
    /// before it are in the exported snapshot.
    pub consistent_point: Lsn,
    /// The exported snapshot's name (`SnapshotAction::Export` only).
    pub snapshot_name: Option<String>,
    pub output_plugin: Option<String>,
}

/// The rows and command tag of a simple query. Values are text; `None` is SQL NULL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// The CommandComplete tag of the last statement, e.g. `SELECT 1` or `CREATE_REPLICATION_SLOT`.
    pub tag: Option<String>,
}

impl QueryResult {
    fn single_row(self, what: &str, min_cols: usize) -> Result<Vec<Option<String>>> {
        let mut rows = self.rows.into_iter();
        match (rows.next(), rows.next()) {
            (Some(row), None) if row.len() >= min_cols => Ok(row),
            _ => Err(ReplicationError::Protocol(format!(
                "{what}: expected one row with at least {min_cols} fields"
            ))),
        }
    }
}

fn parse_lsn_field(v: Option<String>, what: &str) -> Result<Lsn> {
    let v = v.ok_or_else(|| ReplicationError::Protocol(format!("{what} is NULL")))?;
    v.parse()
        .map_err(|e| ReplicationError::Protocol(format!("{what}: {e}")))
}

impl ReplConn {
    /// Runs one simple query (a replication command or SQL) and collects its text results.
    pub async fn simple_query(&mut self, sql: &str) -> Result<QueryResult> {
        frontend::query(sql, self.write_buf())
            .map_err(|e| ReplicationError::Config(format!("invalid query text: {e}")))?;
        self.flush().await?;
        let mut result = QueryResult::default();
        let mut error = None;
        loop {
            // A FATAL error is followed by EOF: report the error, not the EOF.
            let frame = match self.read_frame().await {
                Ok(f) => f,
                Err(e) => return Err(error.unwrap_or(e)),
            };
            let Some(frame) = self.handle_async(frame) else {
                continue;
            };
            let Frame::Message(msg) = frame else {
                return Err(ReplicationError::Protocol(
                    "unexpected CopyBothResponse to a simple query".into(),
                ));
            };
            match msg {
                backend::Message::RowDescription(body) => {
                    result.columns = body
                        .fields()
                        .map(|f| Ok(f.name().to_owned()))
                        .collect()
                        .map_err(|e| ReplicationError::Protocol(e.to_string()))?;
                }
                backend::Message::DataRow(body) => {
                    let buf = body.buffer();
                    let row = body
                        .ranges()
                        .map(|r| Ok(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned())))
                        .collect()
                        .map_err(|e| ReplicationError::Protocol(e.to_string()))?;
                    result.rows.push(row);
                }
                backend::Message::CommandComplete(body) => {
                    result.tag = body.tag().ok().map(str::to_owned);
                }
                backend::Message::EmptyQueryResponse => {}
                backend::Message::ErrorResponse(body) => error = Some(server_error(body)),
                backend::Message::ReadyForQuery(_) => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(result),
                    };
                }
                other => {
                    return Err(error.unwrap_or_else(|| {
                        ReplicationError::Protocol(format!(
                            "unexpected {} in response to a query",
                            message_name(&other)
                        ))
                    }));
                }
            }
        }
    }

    /// IDENTIFY_SYSTEM.
    pub async fn identify_system(&mut self) -> Result<SystemIdentification> {
        let row = self
            .simple_query("IDENTIFY_SYSTEM")
            .await?
            .single_row("IDENTIFY_SYSTEM", 4)?;
        let mut f = row.into_iter();
        let systemid = f.next().flatten().unwrap_or_default();
        let timeline = f
            .next()
            .flatten()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| ReplicationError::Protocol("IDENTIFY_SYSTEM: bad timeline".into()))?;
        let xlogpos = parse_lsn_field(f.next().flatten(), "IDENTIFY_SYSTEM xlogpos")?;
        let dbname = f.next().flatten();
        Ok(SystemIdentification {
            systemid,
            timeline,
            xlogpos,
            dbname,
        })
    }

    /// Creates a logical slot. With `export_snapshot`, the returned snapshot stays importable
    /// only while this connection stays idle: run pg_dump (or `SET TRANSACTION SNAPSHOT`)
    /// before sending anything else on it or closing it.
    pub async fn create_logical_slot(
        &mut self,
        slot: &str,
        plugin: &str,
        temporary: bool,
        export_snapshot: bool,
    ) -> Result<CreatedSlot> {
        let action = if export_snapshot {
            SnapshotAction::Export
        } else {
            SnapshotAction::Nothing
        };
        self.create_logical_slot_with(slot, plugin, temporary, action)
            .await
    }

    /// [`create_logical_slot`](Self::create_logical_slot) with any snapshot action.
    pub async fn create_logical_slot_with(
        &mut self,
        slot: &str,
        plugin: &str,
        temporary: bool,
        snapshot: SnapshotAction,
    ) -> Result<CreatedSlot> {
        let version = self.server_version_num().unwrap_or(150000);
        let cmd = create_slot_command(slot, plugin, temporary, snapshot, version)?;
        let row = self
            .simple_query(&cmd)
            .await?
            .single_row("CREATE_REPLICATION_SLOT", 4)?;
        let mut f = row.into_iter();
        let slot_name = f.next().flatten().unwrap_or_else(|| slot.to_owned());
        let consistent_point = parse_lsn_field(f.next().flatten(), "consistent_point")?;
        let snapshot_name = f.next().flatten();
        let output_plugin = f.next().flatten();
        Ok(CreatedSlot {
            slot_name,
            consistent_point,
            snapshot_name,
            output_plugin,
        })
    }

    /// Drops a slot. With `wait`, waits for its current user to release it.
    pub async fn drop_slot(&mut self, slot: &str, wait: bool) -> Result<()> {
        self.simple_query(&drop_slot_command(slot, wait)?).await?;
        Ok(())
    }

    /// Starts logical streaming from `start` (the server begins at max(start, the slot's
    /// confirmed_flush_lsn)). Plugin/option errors and a slot in use are reported here, before
    /// any data.
    pub async fn start_replication(
        mut self,
        slot: &str,
        start: Lsn,
        options: &[(&str, &str)],
    ) -> Result<ReplicationStream> {
        let cmd = start_replication_command(slot, start, options)?;
        frontend::query(&cmd, self.write_buf())
            .map_err(|e| ReplicationError::Config(format!("invalid command text: {e}")))?;
        self.flush().await?;
        let mut error = None;
        loop {
            // A FATAL error is followed by EOF: report the error, not the EOF.
            let frame = match self.read_frame().await {
                Ok(f) => f,
                Err(e) => return Err(error.unwrap_or(e)),
            };
            match self.handle_async(frame) {
                None => {}
                Some(Frame::CopyBoth(_)) => return Ok(ReplicationStream::new(self)),
                Some(Frame::Message(backend::Message::ErrorResponse(body))) => {
                    error = Some(server_error(body));
                }
                Some(Frame::Message(backend::Message::ReadyForQuery(_))) => {
                    return Err(error.unwrap_or_else(|| {
                        ReplicationError::Protocol(
                            "START_REPLICATION finished without streaming".into(),
                        )
                    }));
                }
                Some(other) => {
                    return Err(ReplicationError::Protocol(format!(
                        "unexpected response to START_REPLICATION: {other:?}"
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("s").unwrap(), "\"s\"");
        assert_eq!(quote_ident("a\"b").unwrap(), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's").unwrap(), "'it''s'");
        assert_eq!(quote_literal("C:\\dir").unwrap(), "'C:\\dir'");
        assert!(quote_literal("a\0b").is_err());
        assert!(quote_ident("a\0b").is_err());
    }

    #[test]
    fn create_slot_syntax_by_version() {
        assert_eq!(
            create_slot_command("s", "wal2sql", false, SnapshotAction::Export, 150020).unwrap(),
            "CREATE_REPLICATION_SLOT \"s\" LOGICAL \"wal2sql\" (SNAPSHOT 'export')"
        );
        assert_eq!(
            create_slot_command("s", "test_decoding", true, SnapshotAction::Nothing, 170000)
                .unwrap(),
            "CREATE_REPLICATION_SLOT \"s\" TEMPORARY LOGICAL \"test_decoding\" (SNAPSHOT 'nothing')"
        );
        assert_eq!(
            create_slot_command("s", "wal2sql", false, SnapshotAction::Export, 140010).unwrap(),
            "CREATE_REPLICATION_SLOT \"s\" LOGICAL \"wal2sql\" EXPORT_SNAPSHOT"
        );
        assert_eq!(
            create_slot_command("s", "wal2sql", true, SnapshotAction::Use, 100000).unwrap(),
            "CREATE_REPLICATION_SLOT \"s\" TEMPORARY LOGICAL \"wal2sql\" USE_SNAPSHOT"
        );
        assert_eq!(
            create_slot_command("s", "wal2sql", false, SnapshotAction::Export, 90600).unwrap(),
            "CREATE_REPLICATION_SLOT \"s\" LOGICAL \"wal2sql\""
        );
        assert!(create_slot_command("s", "wal2sql", true, SnapshotAction::Export, 90600).is_err());
    }

    #[test]
    fn drop_and_start_syntax() {
        assert_eq!(
            drop_slot_command("s", false).unwrap(),
            "DROP_REPLICATION_SLOT \"s\""
        );
        assert_eq!(
            drop_slot_command("s", true).unwrap(),
            "DROP_REPLICATION_SLOT \"s\" WAIT"
        );
        assert_eq!(
            start_replication_command("s", Lsn(0), &[]).unwrap(),
            "START_REPLICATION SLOT \"s\" LOGICAL 0/0"
        );
        assert_eq!(
            start_replication_command(
                "s",
                "16/B374D848".parse().unwrap(),
                &[("include-xids", "0"), ("we\"ird", "it's \\n")]
            )
            .unwrap(),
            "START_REPLICATION SLOT \"s\" LOGICAL 16/B374D848 (\"include-xids\" '0', \"we\"\"ird\" 'it''s \\n')"
        );
    }
}
