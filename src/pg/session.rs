//! SQL connections through tokio-postgres, opened from a resolved [`ConnParams`]: targets tried
//! in order as libpq does, server and network failures turned into connection errors worded
//! like libpq's, and a password prompt when the server asks for one and `-w` was not given.

use tokio_postgres::{Client, Config, SimpleQueryMessage};

use crate::error::{Error, Result};
use crate::pg::attempt;
use crate::pg::conninfo::{ConnParams, Host, Target};

/// An open SQL session and the target it reached (subprocesses must use the same one).
pub struct Session {
    pub client: Client,
    pub target: Target,
    /// The password that worked (if any), so subprocesses need not prompt again.
    pub password: Option<String>,
}

impl Session {
    /// The connection description narrowed to the server this session reached, with the
    /// password that worked: what a replication connection or a child program must use to
    /// reach the very same server (an exported snapshot lives there only).
    pub fn params(&self, params: &ConnParams) -> ConnParams {
        let mut narrowed = params.for_target(&self.target);
        if self.password.is_some() {
            narrowed.password = self.password.clone();
        }
        narrowed
    }
}

fn config_for(params: &ConnParams, target: &Target, password: Option<&str>) -> Config {
    let mut config = Config::new();
    config
        .user(&params.user)
        .dbname(&params.dbname)
        .port(target.port);
    match &target.host {
        Host::Tcp(name) => config.host(name),
        Host::Unix(dir) => config.host_path(dir),
    };
    if let Some(password) = password {
        config.password(password);
    }
    if let Some(name) = &params.application_name {
        config.application_name(name);
    }
    if let Some(timeout) = params.connect_timeout {
        config.connect_timeout(timeout);
    }
    if let Some(options) = &params.options {
        config.options(options);
    }
    // The same bounds as the replication socket (pg/replication/conn.rs): a path that silently
    // drops packets fails a session within about a minute, not after the kernel's two hours.
    // The streamer holds such a session open for as long as it runs.
    config
        .keepalives(true)
        .keepalives_idle(std::time::Duration::from_secs(30))
        .keepalives_interval(std::time::Duration::from_secs(10))
        .keepalives_retries(3)
        .tcp_user_timeout(std::time::Duration::from_secs(60));
    // Unix sockets never use TLS, whatever sslmode says (libpq does the same).
    config.ssl_mode(if target.is_unix() {
        tokio_postgres::config::SslMode::Disable
    } else {
        crate::pg::tls::tokio_postgres_ssl_mode(params.sslmode)
    });
    config
}

/// Connect to the first target that accepts us.
pub async fn connect(params: &ConnParams) -> Result<Session> {
    let failures =
        match attempt::first_target(params, |target| connect_target(params, target)).await {
            Ok(session) => return Ok(session),
            Err(failures) => failures,
        };
    // Like libpq, name every attempt: the first as the error, the others as its detail.
    let mut failures = failures.into_iter();
    let first = failures
        .next()
        .unwrap_or_else(|| Error::connection("no host to connect to"));
    let others: Vec<String> = failures.map(|e| e.message).collect();
    Err(if others.is_empty() {
        first
    } else {
        first.with_detail(others.join("\n"))
    })
}

async fn connect_target(params: &ConnParams, target: &Target) -> Result<Session> {
    let mut password = params.password_for(target);
    let tls = crate::pg::tls::make_tls(params).map_err(|e| Error::connection(e.to_string()))?;
    loop {
        let config = config_for(params, target, password.as_deref());
        let attempt = config.connect(tls.clone());
        // Timed here, not around the whole of this function: a password prompt is not part of
        // the attempt.
        let result = match attempt::within_timeout(params, attempt).await {
            Ok(result) => result,
            Err(limit) => {
                return Err(Error::connection(format!(
                    "connection to {} failed: timeout expired after {} seconds",
                    target.describe(),
                    limit.as_secs()
                ))
                .with_hint("The server did not complete the connection in time; set connect_timeout or PGCONNECT_TIMEOUT to wait longer."));
            }
        };
        match result {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!("connection closed: {err}");
                    }
                });
                return Ok(Session {
                    client,
                    target: target.clone(),
                    password,
                });
            }
            Err(err) => {
                let wants_password = password.is_none() && is_password_missing(&err);
                if wants_password
                    && !params.no_password
                    && std::io::IsTerminal::is_terminal(&std::io::stdin())
                {
                    password = Some(crate::pg::conninfo::prompt_password("Password: ")?);
                    continue;
                }
                return Err(connect_error(target, &err));
            }
        }
    }
}

fn is_password_missing(err: &tokio_postgres::Error) -> bool {
    let text = err.to_string();
    text.contains("password missing")
}

/// Word a failed connection like libpq does: `connection to server at "h", port 5432 failed: …`.
pub(crate) fn connect_error(target: &Target, err: &tokio_postgres::Error) -> Error {
    let reason = match err.as_db_error() {
        Some(db) => format!("{}:  {}", db.severity(), db.message()),
        None => {
            // tokio-postgres wraps the OS error; libpq shows only the innermost reason.
            let mut inner: &dyn std::error::Error = err;
            while let Some(source) = inner.source() {
                inner = source;
            }
            if inner.to_string().contains("password missing") {
                "fe_sendauth: no password supplied".to_string()
            } else {
                crate::error::io_reason(inner)
            }
        }
    };
    let mut error = Error::connection(format!(
        "connection to {} failed: {reason}",
        target.describe()
    ));
    if err.as_db_error().is_none() && reason.contains("Connection refused") {
        error = error.with_hint(match target.host {
            Host::Tcp(_) => "Is the server running on that host and accepting TCP/IP connections?",
            Host::Unix(_) => {
                "Is the server running locally and accepting connections on that socket?"
            }
        });
    }
    error
}

/// Run one query that returns a single text value.
pub(crate) async fn query_text(client: &Client, sql: &str) -> Result<String> {
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(|e| query_error(sql, &e))?;
    row.try_get::<_, String>(0)
        .map_err(|e| Error::backup(format!("unexpected result from \"{sql}\": {e}")))
}

/// The rows of a simple query, every column as text (NULL as `None`): the simple protocol
/// returns any type as text, and the text is all our catalog queries need.
pub(crate) async fn simple_rows(
    client: &Client,
    sql: &str,
) -> std::result::Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    Ok(client
        .simple_query(sql)
        .await?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

/// [`simple_rows`], a failure worded by [`query_error`].
pub(crate) async fn rows_text(client: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    simple_rows(client, sql)
        .await
        .map_err(|e| query_error(sql, &e))
}

/// The first column of the first row of a simple query, if there is a row and it is not NULL.
pub(crate) async fn one_text(client: &Client, sql: &str) -> Result<Option<String>> {
    Ok(rows_text(client, sql)
        .await?
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten()))
}

/// A failed query as a diagnostic that keeps the server's detail and hint.
pub(crate) fn query_error(sql: &str, err: &tokio_postgres::Error) -> Error {
    match err.as_db_error() {
        Some(db) => {
            let mut error = Error::backup(format!("query failed: {}", db.message()))
                .with_detail(format!("Query was: {sql}"));
            if let Some(hint) = db.hint() {
                error = error.with_hint(hint.to_string());
            }
            error
        }
        None => Error::connection(format!("query failed: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::conninfo::{ConnOptions, Environment, resolve};

    #[test]
    fn sessions_bound_a_silent_network_path() {
        let env = Environment {
            os_user: Some("u".into()),
            ..Default::default()
        };
        let opts = ConnOptions {
            dbname: Some("host=db.example port=5433".into()),
            ..Default::default()
        };
        let params = resolve(&opts, &env).unwrap();
        let config = config_for(&params, &params.targets[0], None);
        assert!(config.get_keepalives());
        assert_eq!(
            config.get_keepalives_idle(),
            std::time::Duration::from_secs(30)
        );
        assert_eq!(
            config.get_tcp_user_timeout(),
            Some(&std::time::Duration::from_secs(60))
        );
    }
}
