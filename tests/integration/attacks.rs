//! Adversarial tests: an unprivileged LOGIN role (`mallory`, owner of schema `us` and nothing
//! else) tries every known way to make a restore run SQL of its choosing as the restoring
//! superuser, or to make the chain unrestorable (issue 13, doc/security.md). Each scenario
//! streams for real (`--init`, `--start`), kills the streamer with SIGKILL and starts it again,
//! adds a chain with `--new-chain`, restores with `--restore --create`, and then checks that no
//! role gained a right, that no object the attacker aimed for exists, and that the restored
//! database equals the source (rows and schema).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{Cluster, Streamer, bindir, newest_chain, pg_scribe, scratch_dir, stderr};

const ATTACKER: &str = "mallory";

/// Runs `sql` (raw bytes: it may be in another client encoding) as `user` through `psql -c`,
/// so that a multi-statement string reaches the server as one query, as an attacker sends it;
/// a line `;;` separates queries (a setting must be in effect before the text it affects is
/// parsed, on the source as on the replay).
fn psql_as(cluster: &Cluster, db: &str, user: &str, sql: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bindir().join("psql"));
    cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(&cluster.socket_dir)
        .args(["-p", &cluster.port.to_string(), "-U", user, "-d", db]);
    // Steps separated by a line ";;" go as separate queries of one session (settings first).
    let mut rest = sql;
    loop {
        let cut = rest.windows(4).position(|w| w == b"\n;;\n");
        let (step, next) = match cut {
            Some(i) => (&rest[..i], Some(&rest[i + 4..])),
            None => (rest, None),
        };
        cmd.arg("-c").arg(OsStr::from_bytes(step));
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    cmd.env_remove("PGPASSWORD").env_remove("PGCLIENTENCODING");
    cmd.envs(env.iter().copied());
    cmd.output().expect("psql")
}

/// Runs an attack as the attacker; it must succeed in the source (so that it is captured).
fn attack(cluster: &Cluster, sql: &str) {
    attack_bytes(cluster, sql.as_bytes(), &[]);
}

fn attack_bytes(cluster: &Cluster, sql: &[u8], env: &[(&str, &str)]) {
    let out = psql_as(cluster, "app", ATTACKER, sql, env);
    assert!(
        out.status.success(),
        "attack failed in the source: {}\n{}",
        String::from_utf8_lossy(sql),
        stderr(&out)
    );
}

/// Every role's rights and memberships, cluster-wide.
fn rights(cluster: &Cluster) -> String {
    cluster.psql(
        "postgres",
        "SELECT string_agg(format('%s super=%s createrole=%s createdb=%s repl=%s bypassrls=%s',
                                  rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls),
                           E'\\n' ORDER BY rolname) FROM pg_roles WHERE rolname !~ '^pg_'
         UNION ALL
         SELECT coalesce(string_agg(format('%s in %s', m.member::regrole, m.roleid::regrole), E'\\n'
                                    ORDER BY 1), '') FROM pg_auth_members m
          WHERE m.member::regrole::text !~ '^pg_'",
    )
}

/// Objects an attack would create if any of its text ran as a superuser.
fn pwned(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT coalesce(string_agg(relname, ' ' ORDER BY relname), '') FROM pg_class WHERE relname LIKE 'pwned%'",
    )
    .trim()
    .to_string()
}

fn schema(cluster: &Cluster, db: &str) -> String {
    let out = Command::new(bindir().join("pg_dump"))
        .args(["--schema-only", "-h"])
        .arg(&cluster.socket_dir)
        .args(["-p", &cluster.port.to_string(), "-U", "postgres", db])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Database `app` with schema `us` owned by the attacker, a table of the superuser's, and the
/// attacker's tables.
fn source(cluster: &Cluster) {
    cluster.create_database("app");
    cluster.psql("postgres", &format!("CREATE ROLE {ATTACKER} LOGIN"));
    // Public's CREATE for everyone goes as from 15 on: before, the attacker could make a
    // `pwned` table there as itself, and the check could not tell who ran the attack.
    cluster.psql(
        "app",
        &format!(
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             CREATE SCHEMA us AUTHORIZATION {ATTACKER};
             CREATE TABLE public.victim (id int PRIMARY KEY, v text);
             INSERT INTO public.victim SELECT g, 'v' || g FROM generate_series(1, 20) g;
             CREATE TABLE public.marker (label text PRIMARY KEY);"
        ),
    );
    attack(
        cluster,
        "CREATE TABLE us.t (id int PRIMARY KEY, b text, n int);
         INSERT INTO us.t SELECT g, 'b' || g, g FROM generate_series(1, 10) g;",
    );
}

fn init(cluster: &Cluster, dir: &Path) -> Output {
    pg_scribe(
        &[
            "--init",
            "-d",
            "app",
            "--backup-dir",
            dir.to_str().unwrap(),
            "--slot",
            "s",
        ],
        &cluster.env("app"),
    )
}

fn start(cluster: &Cluster, dir: &Path, log: &str) -> Streamer {
    let mut s = Streamer::start(
        &["--backup-dir", dir.to_str().unwrap(), "-s", "1", "-F", "1"],
        &cluster.env("app"),
        &dir.with_extension(log),
    );
    s.wait_log("Writing to:", 60);
    s
}

/// A marker row written by the superuser, waited for in the newest chain.
fn settle(cluster: &Cluster, dir: &Path, label: &str) {
    cluster.psql("app", &format!("INSERT INTO marker VALUES ('{label}')"));
    crate::harness::wait_for_text(&newest_chain(dir), label, 90);
}

fn chains(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("chain-")
        })
        .collect();
    v.sort();
    v
}

fn restore(cluster: &Cluster, dir: &Path, target: &str, chain: Option<&Path>) -> Output {
    let mut args = vec![
        "--restore".to_string(),
        "--backup-dir".into(),
        dir.to_str().unwrap().into(),
        "-d".into(),
        target.into(),
        "--create".into(),
        "--include-active".into(),
    ];
    if let Some(chain) = chain {
        let id = chain.file_name().unwrap().to_string_lossy();
        args.push("--chain-id".into());
        args.push(id.trim_start_matches("chain-").to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pg_scribe(&args, &cluster.env("postgres"))
}

/// Runs `rounds` of attacks around a streamer's SIGKILL and restart and a `--new-chain`, restores
/// both chains and checks that nothing was gained and the newest chain equals the source.
fn scenario(cluster: &Cluster, rounds: [&dyn Fn(&Cluster); 3]) -> PathBuf {
    let dir = scratch_dir("attacks").join("backups");
    let out = init(cluster, &dir);
    assert_eq!(out.status.code(), Some(0), "init: {}", stderr(&out));
    let before = rights(cluster);

    let streamer = start(cluster, &dir, "log1");
    rounds[0](cluster);
    settle(cluster, &dir, "round-1");
    streamer.kill9();
    rounds[1](cluster);
    let streamer = start(cluster, &dir, "log2");
    settle(cluster, &dir, "round-2");
    let out = pg_scribe(
        &["--new-chain", "--backup-dir", dir.to_str().unwrap()],
        &cluster.env("app"),
    );
    assert_eq!(out.status.code(), Some(0), "new-chain: {}", stderr(&out));
    rounds[2](cluster);
    settle(cluster, &dir, "round-3");
    assert_eq!(
        streamer.stop(),
        Some(0),
        "the streamer must survive every attack"
    );

    let all = chains(&dir);
    assert_eq!(all.len(), 2, "{all:?}");
    for (chain, target) in [(&all[0], "restored_old"), (&all[1], "restored")] {
        let out = restore(cluster, &dir, target, Some(chain));
        assert_eq!(
            out.status.code(),
            Some(0),
            "restore {target}: {}",
            stderr(&out)
        );
        assert_eq!(
            pwned(cluster, target),
            "",
            "{target}: an attack ran as superuser"
        );
    }
    assert_eq!(rights(cluster), before, "a role gained rights");
    assert_eq!(pwned(cluster, "app"), "");
    assert_eq!(
        cluster.table_digests("app"),
        cluster.table_digests("restored"),
        "the restored database differs from the source"
    );
    assert_eq!(schema(cluster, "app"), schema(cluster, "restored"));
    // Every trailer line in the files is a real one: as many as headers.
    for chain in &all {
        for diff in crate::harness::chain_diffs(chain, true) {
            let text = std::fs::read(&diff).unwrap();
            let count = |p: &[u8]| {
                text.split(|&b| b == b'\n')
                    .filter(|l| l.starts_with(p))
                    .count()
            };
            assert_eq!(
                count(b"-- wal2sql begin "),
                count(b"-- wal2sql commit "),
                "{}",
                diff.display()
            );
        }
    }
    dir
}

/// The payload every injection tries to run as the superuser.
const PAYLOAD: &str = "RESET ROLE; ALTER ROLE mallory SUPERUSER; CREATE TABLE public.pwned ();";

/// Paths 1 and 2 of issue 13: DDL text that a lexer other than the server's, or settings applied
/// too late, would split elsewhere than the source did.
#[test]
fn ddl_text_is_replayed_exactly_as_the_source_parsed_it() {
    let cluster = Cluster::start();
    source(&cluster);
    let text_attacks = |c: &Cluster| {
        // Path 1: standard_conforming_strings off in the attacker's session.
        attack(
            c,
            &format!(
                "SET standard_conforming_strings = off; SET escape_string_warning = off;\n;;\n
                 COMMENT ON TABLE us.t IS 'x\\'; {PAYLOAD} --';"
            ),
        );
        attack(
            c,
            &format!(
                "SET backslash_quote = on; SET standard_conforming_strings = off;\n;;\n
                 COMMENT ON COLUMN us.t.b IS 'y\\'; {PAYLOAD} --';"
            ),
        );
        attack(
            c,
            &format!("COMMENT ON COLUMN us.t.n IS E'z\\'; {PAYLOAD} --';"),
        );
        // Path 2: `$` inside an identifier followed by a string (d$e'…' is not E'…').
        attack(c, "CREATE DOMAIN us.d$e AS text;");
        // A setting in the same query string applies after the string was parsed: the DDL
        // after it is read with the value from before (and must be replayed so).
        attack(
            c,
            "SET standard_conforming_strings = off; CREATE TABLE us.sc (id int PRIMARY KEY, v text DEFAULT 'a\\\\b');
             RESET standard_conforming_strings;",
        );
        attack(
            c,
            &format!(
                "ALTER TABLE us.t ALTER COLUMN b SET DEFAULT us.d$e'\\' -- '; {PAYLOAD} --\n;"
            ),
        );
        // BEGIN as a column name, `;` inside a rule's parentheses.
        attack(
            c,
            "CREATE TABLE us.bg (id int PRIMARY KEY, begin int, \"end\" text, atomic int);
             INSERT INTO us.bg VALUES (1, 2, 'e', 3);
             CREATE TABLE us.log (n int);
             CREATE RULE r AS ON INSERT TO us.bg DO ALSO (INSERT INTO us.log VALUES (1); INSERT INTO us.log VALUES (2));
             INSERT INTO us.bg VALUES (2, 3, 'f', 4);",
        );
    };
    let quote_attacks = |c: &Cluster| {
        // Dollar quotes inside dollar quotes, nested comments, identifiers with `$`, quotes,
        // newlines and `*/`.
        attack(
            c,
            &format!(
                "CREATE FUNCTION us.f() RETURNS text LANGUAGE plpgsql AS $outer$
                 BEGIN RETURN $inner$ '; {PAYLOAD} $$ $inner$; END $outer$;
                 /* /* */ ; {PAYLOAD} */ CREATE TABLE us.c1 (id int PRIMARY KEY, v text DEFAULT us.f());
                 INSERT INTO us.c1 (id) VALUES (1);"
            ),
        );
        attack(
            c,
            "CREATE TABLE us.\"we\"\"ird$ */ --\nname\" (id int PRIMARY KEY, \"col\numn\" text, \"x*/y\" text);
             INSERT INTO us.\"we\"\"ird$ */ --\nname\" VALUES (1, E'a\\nb', '*/'), (2, '-- wal2sql commit end_lsn=0/1', NULL);
             UPDATE us.\"we\"\"ird$ */ --\nname\" SET \"col\numn\" = E'\\n-- wal2sql ddl bytes=3\\nx' WHERE id = 1;
             DELETE FROM us.\"we\"\"ird$ */ --\nname\" WHERE id = 2;",
        );
        attack(
            c,
            &format!("ALTER TABLE us.t ADD COLUMN \"{PAYLOAD}\" text DEFAULT $$' {PAYLOAD} $$;"),
        );
    };
    let encoding_attacks = |c: &Cluster| {
        // Client encodings whose multibyte characters end in a backslash byte: the server
        // converts to UTF-8 before it parses, and so must the replay see it.
        for enc in ["SJIS", "GBK"] {
            let ch = c.psql(
                "app",
                &format!(
                    "CREATE FUNCTION pg_temp.ends_in_backslash(enc text) RETURNS text LANGUAGE plpgsql AS $$
                     DECLARE b bytea;
                     BEGIN
                       FOR cp IN 12353..40000 LOOP
                         BEGIN b := convert_to(chr(cp), enc); EXCEPTION WHEN OTHERS THEN CONTINUE; END;
                         IF length(b) = 2 AND get_byte(b, 1) = 92 THEN RETURN encode(b, 'hex'); END IF;
                       END LOOP;
                       RETURN NULL;
                     END $$;
                     SELECT pg_temp.ends_in_backslash('{enc}')"
                ),
            );
            let bytes: Vec<u8> = (0..ch.trim().len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&ch.trim()[i..i + 2], 16).unwrap())
                .collect();
            assert_eq!(bytes.len(), 2, "{enc}: {ch}");
            let mut sql =
                b"SET standard_conforming_strings = off;\n;;\nCOMMENT ON TABLE us.bg IS '".to_vec();
            sql.extend_from_slice(&bytes);
            sql.extend_from_slice(b"'; INSERT INTO us.log VALUES (7); CREATE TABLE us.enc_");
            sql.extend_from_slice(enc.to_lowercase().as_bytes());
            sql.extend_from_slice(b" (id int PRIMARY KEY, v text DEFAULT '");
            sql.extend_from_slice(&bytes);
            sql.extend_from_slice(b"\\\\');");
            attack_bytes(c, &sql, &[("PGCLIENTENCODING", enc)]);
        }
    };
    scenario(&cluster, [&text_attacks, &quote_attacks, &encoding_attacks]);
    // The comments hold what the source stored, whatever the attacker's settings were.
    assert_eq!(
        cluster.psql(
            "restored",
            "SELECT obj_description('us.t'::regclass) || '|' || col_description('us.t'::regclass, 2)"
        ),
        cluster.psql(
            "app",
            "SELECT obj_description('us.t'::regclass) || '|' || col_description('us.t'::regclass, 2)"
        )
    );
}

/// Path 3: row values that hold framing lines, with trailers aimed at the transaction's real end
/// (the attacker measures the WAL size of an identical transaction and predicts the next one).
#[test]
fn row_values_cannot_forge_framing() {
    let cluster = Cluster::start();
    source(&cluster);
    attack(
        &cluster,
        "CREATE TABLE us.v (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text)",
    );
    let forge = |c: &Cluster| {
        let forged = format!(
            "\n-- wal2sql commit end_lsn=0/1\n-- wal2sql begin xid=1 commit_lsn=0/2 end_lsn=0/3 commit_time=2030-01-01T00:00:00.000000Z format=2\nBEGIN;\n{PAYLOAD}\nCOMMIT;\n-- wal2sql commit end_lsn=0/3\n-- wal2sql ddl bytes=10\n\r\n-- wal2sql text bytes=1\n"
        );
        attack(
            c,
            &format!(
                "INSERT INTO us.v (body) VALUES (E'{}');",
                forged.replace('\\', "\\\\").replace('\'', "''")
            ),
        );
        // Predicted trailers: an identical transaction has an identical WAL size.
        attack(
            c,
            "DO $$
             DECLARE l0 pg_lsn; size numeric; l pg_lsn; v text;
             BEGIN
               FOR i IN 1..20 LOOP
                 l0 := pg_current_wal_insert_lsn();
                 v := '';
                 FOR k IN -8..8 LOOP
                   v := v || E'\\n-- wal2sql commit end_lsn=' || (l0 + coalesce(size, 0) + k * 8)::text || E'\\n';
                 END LOOP;
                 INSERT INTO us.v (body) VALUES (v || E'BEGIN;\\nALTER ROLE mallory SUPERUSER;\\n');
                 COMMIT;
                 size := pg_current_wal_insert_lsn() - l0;
               END LOOP;
             END $$;",
        );
    };
    scenario(&cluster, [&forge, &forge, &forge]);
}

/// Path 4: row changes compare with pg_catalog's `=` whatever search_path the DDL before them
/// had, and whatever session setting the DDL's code changed on replay (`us.sp()`, evaluated
/// again by the replayed ALTER TABLE, sets the session's search_path to find `us.=` first; the
/// single-row DELETEs after it are merged into `IN (…)`, which resolves `=` by search_path).
#[test]
fn row_changes_never_resolve_user_operators() {
    let cluster = Cluster::start();
    source(&cluster);
    attack(
        &cluster,
        "CREATE FUNCTION us.eq(int4, int4) RETURNS bool LANGUAGE plpgsql AS $$
         BEGIN
           BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
           BEGIN EXECUTE 'CREATE TABLE public.pwned_op ()'; EXCEPTION WHEN OTHERS THEN NULL; END;
           RETURN $1 OPERATOR(pg_catalog.=) $2;
         END $$;
         CREATE OPERATOR us.= (FUNCTION = us.eq, LEFTARG = int4, RIGHTARG = int4);
         CREATE FUNCTION us.sp() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
         BEGIN
           PERFORM pg_catalog.set_config('search_path', 'us, pg_catalog', false);
           PERFORM pg_catalog.set_config('standard_conforming_strings', 'off', false);
           PERFORM pg_catalog.set_config('client_encoding', 'SJIS', false);
           RETURN 'w';
         END $$;
         CREATE TABLE us.k (id int PRIMARY KEY, v text);
         INSERT INTO us.k SELECT g, 'k' || g FROM generate_series(1, 200) g;",
    );
    let round = |c: &Cluster| {
        let n: u32 = c
            .psql("app", "SELECT count(*) FROM marker")
            .trim()
            .parse()
            .unwrap();
        attack(
            c,
            &format!(
                "SET search_path = us, pg_catalog;
                 BEGIN;
                 ALTER TABLE us.k ADD COLUMN IF NOT EXISTS z{n} int;
                 UPDATE us.k SET v = 'x' WHERE id = {a};
                 DELETE FROM us.k WHERE id = {b};
                 COMMIT;
                 ALTER TABLE us.k ADD COLUMN w{n} text DEFAULT us.sp();\n;;\n
                 DELETE FROM us.k WHERE id = {c1};\n;;\n
                 DELETE FROM us.k WHERE id = {c2};\n;;\n
                 DELETE FROM us.k WHERE id = {c3};\n;;\n
                 UPDATE us.k SET v = 'y' WHERE id = {c4};",
                a = 10 * n + 1,
                b = 10 * n + 2,
                c1 = 10 * n + 3,
                c2 = 10 * n + 4,
                c3 = 10 * n + 5,
                c4 = 10 * n + 6
            ),
        );
    };
    scenario(&cluster, [&round, &round, &round]);
}

/// Path 5: a role with CREATE on the database squats schema `wal2sql` before `--init`.
#[test]
fn init_refuses_a_squatted_extension_schema() {
    let cluster = Cluster::start();
    source(&cluster);
    cluster.psql(
        "app",
        &format!("GRANT CREATE ON DATABASE app TO {ATTACKER}"),
    );
    attack(&cluster, "CREATE SCHEMA wal2sql");
    let dir = scratch_dir("attacks").join("squat");
    let out = init(&cluster, &dir);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "schema \"wal2sql\" exists and is owned by role \"mallory\", which is not a superuser"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint:") && err.contains("DROP SCHEMA wal2sql"),
        "{err}"
    );
    assert_eq!(
        cluster
            .psql(
                "app",
                "SELECT count(*) FROM pg_extension WHERE extname = 'wal2sql'"
            )
            .trim(),
        "0"
    );
    // A superuser's schema that lets others create in it is refused too.
    cluster.psql(
        "app",
        &format!("DROP SCHEMA wal2sql; CREATE SCHEMA wal2sql; GRANT CREATE ON SCHEMA wal2sql TO {ATTACKER}"),
    );
    let out = init(&cluster, &dir);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("grants CREATE"), "{}", stderr(&out));
    cluster.psql(
        "app",
        &format!("REVOKE CREATE ON SCHEMA wal2sql FROM {ATTACKER}"),
    );
    let out = init(&cluster, &dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Path 6: without the library preloaded, a DDL run inside a function (here a superuser's
/// SECURITY DEFINER one) is never recorded with the text of the statement around it, nor under
/// the definer's role; `CONCURRENTLY` goes only where it is the keyword.
#[test]
fn without_preload_only_a_top_level_lone_statement_is_trusted() {
    let cluster = Cluster::start_with(&["shared_preload_libraries = ''"]);
    source(&cluster);
    cluster.psql(
        "app",
        &format!(
            "CREATE SCHEMA admin;
             CREATE TABLE admin.notes (id int PRIMARY KEY);
             CREATE FUNCTION admin.widen() RETURNS int LANGUAGE plpgsql SECURITY DEFINER
               SET search_path = pg_catalog AS $$
               BEGIN ALTER TABLE admin.notes ADD COLUMN IF NOT EXISTS extra int; RETURN 1; END $$;
             GRANT USAGE ON SCHEMA admin TO {ATTACKER};
             GRANT EXECUTE ON FUNCTION admin.widen() TO {ATTACKER};"
        ),
    );
    let round1 = |c: &Cluster| {
        // The outer ALTER is the attacker's, top-level: trusted, replayed as mallory. The
        // nested one is the definer's, with its own text (the library was loaded at the outer
        // statement's start).
        attack(
            c,
            &format!("ALTER TABLE us.t ADD COLUMN w int DEFAULT admin.widen() /* {PAYLOAD} */"),
        );
        attack(
            c,
            "CREATE FUNCTION us.concurrently(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1'",
        );
        attack(
            c,
            "ALTER TABLE us.t ALTER COLUMN n SET DEFAULT us.concurrently(5)",
        );
        attack(
            c,
            "CREATE INDEX CONCURRENTLY \"concurrently\" ON us.t (us.concurrently(id))",
        );
        // Backslashes in lone statements: their parse-time setting is checked, not guessed.
        attack(c, "COMMENT ON TABLE us.t IS 'a\\b'");
        attack(c, "ALTER TABLE us.t ALTER COLUMN b SET DEFAULT E'x\\\\y'");
        attack(
            c,
            "CREATE TABLE us.np (id int PRIMARY KEY, v text DEFAULT 'p\\q')",
        );
    };
    let nothing = |_: &Cluster| {};
    scenario(&cluster, [&round1, &nothing, &nothing]);
    assert_eq!(
        cluster.psql(
            "restored",
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'us.t'::regclass AND adnum = 3"
        ).trim(),
        "us.\"concurrently\"(5)"
    );

    // Called from a SELECT, the definer's DDL has no text of its own: a marker, and the restore
    // stops there loudly.
    let dir = scratch_dir("attacks").join("marker");
    cluster.psql("app", "SELECT pg_drop_replication_slot('s')");
    let out = init(&cluster, &dir);
    assert_eq!(out.status.code(), Some(0), "init: {}", stderr(&out));
    let streamer = start(&cluster, &dir, "log");
    attack(&cluster, "SELECT admin.widen()");
    settle(&cluster, &dir, "after-select");
    assert_eq!(streamer.stop(), Some(0));
    let out = restore(&cluster, &dir, "restored_marker", None);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be replayed: wal2sql: cannot replay transaction"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pwned(&cluster, "app"), "");
}

/// Diffs written by an older wal2sql (no `format=2`: DDL not framed, raw newlines in values) are
/// refused with a message saying so, not read.
#[test]
fn old_format_diffs_are_refused() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("attacks").join("old");
    let out = init(&cluster, &dir);
    assert_eq!(out.status.code(), Some(0), "init: {}", stderr(&out));
    let chain = newest_chain(&dir);
    let lsns = cluster.psql(
        "app",
        "SELECT (confirmed_flush_lsn + 100) || ' ' || (confirmed_flush_lsn + 200) FROM pg_replication_slots WHERE slot_name = 's'",
    );
    let (start, end) = lsns.trim().split_once(' ').unwrap();
    let old = format!(
        "-- wal2sql begin xid=900 commit_lsn={start} end_lsn={end} commit_time=2030-01-01T00:00:00.000000Z\nBEGIN;\nINSERT INTO public.victim (id, v) VALUES ('100', 'x\n-- wal2sql commit end_lsn={end}');\nCOMMIT;\n-- wal2sql commit end_lsn={end}\n"
    );
    let path = chain.join("diff-20300101T000000Z.sql");
    std::fs::write(&path, old).unwrap();
    let out = restore(&cluster, &dir, "restored_from_old", None);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("older wal2sql"), "{}", stderr(&out));
}
