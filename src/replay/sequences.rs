//! The last step: no sequence owned by a column (serial, identity, `OWNED BY`) is left behind
//! the largest value in that column. The stream's `setval` lines (written by
//! `wal2sql.snapshot_sequences()`) already replayed in order; between two snapshots a sequence
//! may have advanced further in the source, and the next `nextval()` on the restored database
//! must not hand out a value that is already used.

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::session::rows_text as query;

const OWNED: &str = "\
SELECT format('%I.%I', sn.nspname, s.relname), format('%I.%I', tn.nspname, t.relname),
       format('%I', a.attname), q.seqmax::text
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
  JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid
  JOIN pg_catalog.pg_class t ON t.oid = d.refobjid AND t.relkind IN ('r', 'p')
  JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.deptype IN ('a', 'i')
   AND q.seqincrement > 0
   AND a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,
                      'pg_catalog.int8'::pg_catalog.regtype)
 ORDER BY 1";

/// `(checked, advanced)`: owned sequences looked at, and those moved up to their column's max.
pub async fn sync_owned(client: &Client) -> Result<(usize, Vec<String>)> {
    let owned = query(client, OWNED).await?;
    let mut advanced = Vec::new();
    for row in &owned {
        let [Some(seq), Some(table), Some(col), Some(seqmax)] = &row[..] else {
            continue;
        };
        let sql = format!(
            "SELECT (SELECT max({col})::int8 FROM {table}), last_value, is_called FROM {seq}"
        );
        let r = query(client, &sql).await?;
        let Some([max, Some(last), Some(called)]) = r.first().map(|r| &r[..]) else {
            continue;
        };
        let Some(max) = max.as_deref().and_then(|m| m.parse::<i64>().ok()) else {
            continue; // empty table
        };
        let last: i64 = last.parse().unwrap_or(i64::MAX);
        let called = called == "t";
        let behind = max > last || (!called && max >= last);
        if !behind {
            continue;
        }
        if seqmax.parse::<i64>().is_ok_and(|m| max > m) {
            return Err(Error::backup(format!(
                "sequence {seq} cannot reach {max}, the largest value of {table}.{col} (its maximum is {seqmax})"
            )));
        }
        let set = format!(
            "SELECT pg_catalog.setval({}, {max}, true)",
            crate::pg::quote::escaped_literal(seq)
        );
        query(client, &set).await?;
        advanced.push(format!("{seq} → {max}"));
    }
    Ok((owned.len(), advanced))
}
