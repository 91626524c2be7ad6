//! The replay session's own settings: what every row change runs with, set at the start and
//! again after every captured DDL (doc/security.md).

use tokio_postgres::Client;

use crate::error::Result;
use crate::pg::quote::escaped_literal as literal;

/// The replay session's own settings: set at the start, and again after every captured DDL
/// (whose role's code may have changed session settings with `set_config(…, false)`), so that
/// every row change runs with them. `search_path` is `pg_catalog, pg_temp` (nothing a user
/// created is found by an unqualified name), `standard_conforming_strings` on, the client
/// encoding the source's, and fixed values for the settings that change what DDL text means
/// (DateStyle, TimeZone …) and the output of values (the text forms wal2sql compares for
/// REPLICA IDENTITY FULL rows are written with these): wal2sql writes `SET LOCAL` before a DDL statement whose source
/// value differs from these (the list is `w2s_ddl_gucs` in wal2sql/src/queue.c).
pub fn session_settings(encoding: &str) -> String {
    format!(
        "RESET ROLE; RESET ALL; SET synchronous_commit = off; SET session_replication_role = replica; \
         SET wal2sql.capture = off; SET client_encoding = {}; SET search_path = pg_catalog, pg_temp; \
         SET standard_conforming_strings = on; SET check_function_bodies = off; \
         SET DateStyle = 'ISO, MDY'; SET IntervalStyle = postgres; SET TimeZone = 'UTC'; \
         SET lc_monetary = 'C'; SET xmloption = content; SET default_tablespace = ''; \
         SET default_table_access_method = heap; \
         SET extra_float_digits = 3; SET bytea_output = hex;",
        literal(encoding)
    )
}

/// The replay session's settings (the connection must be a superuser's).
pub async fn prepare_session(client: &Client, encoding: &str) -> Result<()> {
    let sql = session_settings(encoding);
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| crate::pg::session::query_error(&sql, &e))
}
