// The command-line misuse cases, as a table: included by tests/integration/cli.rs (each case run
// as a process: exit 5, one error line and the hint) and by src/cli/tests.rs (each case through
// the parser and the connection resolution, in-process).

/// (arguments, the error message that must follow `pg_scribe: error: `)
const MISUSE: &[(&[&str], &str)] = &[
    (
        &[],
        "no action specified: use one of --init, --start, --rotate-diff, --new-chain, --restore, --status, --verify or --expire",
    ),
    (
        &["--init", "--start", "--backup-dir", "/nonexistent"],
        "--init and --start cannot be used together",
    ),
    (
        &["--restore", "--status", "-d", "x"],
        "--restore and --status cannot be used together",
    ),
    (&["--xyzzy"], "unrecognized option \"--xyzzy\""),
    (
        &["--status", "stray"],
        "too many command-line arguments (first is \"stray\")",
    ),
    (&["--init"], "no backup directory specified (--backup-dir)"),
    (
        &["--start", "--backup-dir", "/b", "--spool-dir", "/s"],
        "option --spool-dir is only for a backup directory on object storage (s3://…)",
    ),
    (
        &["--verify", "--backup-dir", "s3://bucket/../x"],
        "invalid object storage URL \"s3://bucket/../x\": \".\" and \"..\" are not allowed in the prefix",
    ),
    (&["--start"], "no backup directory specified (--backup-dir)"),
    (
        &["--rotate-diff"],
        "no backup directory specified (--backup-dir)",
    ),
    (
        &["--new-chain"],
        "no backup directory specified (--backup-dir)",
    ),
    (
        &["--restore", "-d", "x"],
        "no backup directory specified (--backup-dir)",
    ),
    (
        &["--restore", "--backup-dir", "/nonexistent"],
        "no target database specified (-d/--dbname)",
    ),
    (
        &["--init", "--backup-dir", ""],
        "backup directory name must not be empty",
    ),
    (
        &["--start", "--backup-dir", "/b", "--force"],
        "option --force cannot be used with --start",
    ),
    (
        &["--start", "--backup-dir", "/b", "--keep-chains", "2"],
        "option --keep-chains cannot be used with --start",
    ),
    (
        &["--status", "--create"],
        "option --create cannot be used with --status",
    ),
    (
        &["--init", "--backup-dir", "/b", "--lag-warn", "1GB"],
        "option --lag-warn cannot be used with --init",
    ),
    (
        &["--start", "--backup-dir", "/b", "--diff-age-warn", "1d"],
        "option --diff-age-warn cannot be used with --start",
    ),
    (
        &["--status", "--lag-warn", "1XB"],
        "invalid --lag-warn value \"1XB\" (expected a size like 512MB or 10GB)",
    ),
    (
        &["--status", "--retained-warn", "-5"],
        "invalid --retained-warn value \"-5\" (expected a size like 512MB or 10GB)",
    ),
    (
        &["--status", "--diff-age-warn", "7"],
        "invalid --diff-age-warn value \"7\" (expected a duration with a unit s, min, h or d, like 36h or 7d)",
    ),
    (
        &["--init", "--backup-dir", "/b", "--up-to", "0/1"],
        "option --up-to cannot be used with --init",
    ),
    (
        &["--rotate-diff", "--backup-dir", "/b", "--slot", "s"],
        "option --slot cannot be used with --rotate-diff",
    ),
    (
        &["--new-chain", "--backup-dir", "/b", "-s", "5"],
        "option --status-interval cannot be used with --new-chain",
    ),
    (
        &["--restore", "--backup-dir", "/b", "-d", "x", "--json"],
        "option --json cannot be used with --restore",
    ),
    (
        &["--init", "--backup-dir", "/b", "--compress", "brotli"],
        "unrecognized compression algorithm: \"brotli\"",
    ),
    (
        &["--init", "--backup-dir", "/b", "--compress", "zstd:99"],
        "compression algorithm \"zstd\" expects a compression level between 1 and 22",
    ),
    (
        &["--init", "--backup-dir", "/b", "--compress", "gzip:x"],
        "value for compression option \"level\" must be an integer",
    ),
    (
        &["--init", "--backup-dir", "/b", "--compress", "none:3"],
        "compression algorithm \"none\" does not accept a compression level",
    ),
    (
        &[
            "--restore",
            "--backup-dir",
            "/b",
            "-d",
            "x",
            "--up-to",
            "yesterday",
        ],
        "invalid --up-to value \"yesterday\" (expected a timestamp like \"2023-12-16 08:30:00+00\" or an LSN like \"0/1A2B3C4\")",
    ),
    (
        &[
            "--restore",
            "--backup-dir",
            "/b",
            "-d",
            "x",
            "--up-to",
            "2023-13-01 00:00",
        ],
        "invalid --up-to value \"2023-13-01 00:00\" (expected a timestamp like \"2023-12-16 08:30:00+00\" or an LSN like \"0/1A2B3C4\")",
    ),
    (
        &[
            "--restore",
            "--backup-dir",
            "/b",
            "-d",
            "x",
            "--chain-id",
            "2023-12-15",
        ],
        "invalid chain ID \"2023-12-15\" (expected YYYYMMDDTHHMMSSZ, e.g. 20231215T120000Z)",
    ),
    (
        &[
            "--restore",
            "--backup-dir",
            "/b",
            "-d",
            "x",
            "--chain-id",
            "20231332T120000Z",
        ],
        "invalid chain ID \"20231332T120000Z\" (expected YYYYMMDDTHHMMSSZ, e.g. 20231215T120000Z)",
    ),
    (
        &["--init", "--backup-dir", "/b", "--slot", "Bad-Name"],
        "replication slot name \"Bad-Name\" contains invalid character (only lower case letters, numbers and the underscore are allowed)",
    ),
    (
        &["--init", "--backup-dir", "/b", "--slot", ""],
        "replication slot name must not be empty",
    ),
    (
        &[
            "--status",
            "--slot",
            "a234567890123456789012345678901234567890123456789012345678901234",
        ],
        "replication slot name \"a234567890123456789012345678901234567890123456789012345678901234\" is too long (at most 63 bytes)",
    ),
    (
        &["--start", "--backup-dir", "/b", "-s", "ten"],
        "invalid status interval \"ten\"",
    ),
    (
        &["--start", "--backup-dir", "/b", "-F", "-1"],
        "invalid fsync interval \"-1\"",
    ),
    (
        &["--start", "--backup-dir", "/b", "--rotate-every", "15"],
        "invalid --rotate-every value \"15\" (expected a duration like 15min or 1h, a size like 256MB, or one of each like 1h,256MB)",
    ),
    (
        &["--start", "--backup-dir", "/b", "--rotate-every", "10m"],
        "invalid --rotate-every value \"10m\" (expected a duration like 15min or 1h, a size like 256MB, or one of each like 1h,256MB)",
    ),
    (
        &["--start", "--backup-dir", "/b", "--rotate-every", "0s"],
        "invalid --rotate-every value \"0s\" (expected a duration like 15min or 1h, a size like 256MB, or one of each like 1h,256MB)",
    ),
    (
        &["--start", "--backup-dir", "/b", "--rotate-every", "0MB"],
        "invalid --rotate-every value \"0MB\" (expected a duration like 15min or 1h, a size like 256MB, or one of each like 1h,256MB)",
    ),
    (
        &["--start", "--backup-dir", "/b", "--rotate-every", "1h,2h"],
        "invalid --rotate-every value \"1h,2h\" (expected a duration like 15min or 1h, a size like 256MB, or one of each like 1h,256MB)",
    ),
    (
        &["--start", "--backup-dir", "/b", "--rotate-every", "1GB,512MB"],
        "invalid --rotate-every value \"1GB,512MB\" (expected a duration like 15min or 1h, a size like 256MB, or one of each like 1h,256MB)",
    ),
    (
        &["--start", "--backup-dir", "/b", "--rotate-every", ""],
        "invalid --rotate-every value \"\" (expected a duration like 15min or 1h, a size like 256MB, or one of each like 1h,256MB)",
    ),
    (
        &["--rotate-diff", "--backup-dir", "/b", "--rotate-every", "1h"],
        "option --rotate-every cannot be used with --rotate-diff",
    ),
    (
        &["--new-chain", "--backup-dir", "/b", "--rotate-every", "256MB"],
        "option --rotate-every cannot be used with --new-chain",
    ),
    (&["--status", "-p", "0"], "invalid port number: \"0\""),
    (
        &["--status", "-p", "65536"],
        "invalid port number: \"65536\"",
    ),
    (&["--status", "-d"], "option --dbname requires an argument"),
    (
        &["--status", "--slot"],
        "option --slot requires an argument",
    ),
    (
        &["--status=yes"],
        "option --status does not take an argument",
    ),
    (
        &["--status", "-w", "-W"],
        "options -w/--no-password and -W/--password cannot be used together",
    ),
    (
        &["--status", "-d", "host=x frob=1"],
        "invalid connection option \"frob\"",
    ),
    (
        &["--status", "-d", "host=x sslpassword=x"],
        "connection option \"sslpassword\" is not supported by pg_scribe",
    ),
    (
        &["--status", "-d", "postgresql://h/db?sslmode=sometimes"],
        "invalid sslmode value: \"sometimes\"",
    ),
    (
        &["--status", "-d", "host='unterminated"],
        "unterminated quoted string in connection info string",
    ),
    (
        &["--init", "--backup-dir", "/b", "--jobs", "0"],
        "invalid --jobs value \"0\" (expected a whole number from 1 to 1024)",
    ),
    (
        &["--new-chain", "--backup-dir", "/b", "-j", "two"],
        "invalid --jobs value \"two\" (expected a whole number from 1 to 1024)",
    ),
    (
        &["--restore", "--backup-dir", "/b", "-d", "x", "--jobs=-1"],
        "invalid --jobs value \"-1\" (expected a whole number from 1 to 1024)",
    ),
    (
        &["--restore", "--backup-dir", "/b", "-d", "x", "--jobs", "1025"],
        "invalid --jobs value \"1025\" (expected a whole number from 1 to 1024)",
    ),
    (
        &["--start", "--backup-dir", "/b", "--jobs", "2"],
        "option --jobs cannot be used with --start",
    ),
    (&["--init", "--backup-dir", "/b", "-j"], "option --jobs requires an argument"),
];
