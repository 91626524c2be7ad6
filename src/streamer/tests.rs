//! Unit tests of the streamer's bookkeeping (positions, rotations) without a server.
use super::*;
use crate::storage::diff_format::sample_header as hdr;
use crate::storage::writer::Sealed;
use time::macros::datetime;

/// A streamer over a fresh chain in `t`, with no server behind it.
fn streamer(t: &tempfile::TempDir) -> Streamer {
    let dir = BackupDir::new(t.path());
    let chain = dir
        .create_chain(datetime!(2026-11-26 12:00:00 UTC))
        .unwrap();
    let (writer, _) = DiffWriter::open(&chain).unwrap();
    let params = ConnParams {
        targets: Vec::new(),
        user: "u".into(),
        dbname: "d".into(),
        password: None,
        passfile: None,
        sslmode: Default::default(),
        sslrootcert: None,
        sslcert: None,
        sslkey: None,
        sslcrl: None,
        sslcrldir: None,
        application_name: None,
        connect_timeout: None,
        no_password: true,
        options: None,
    };
    let cfg = Config {
        params,
        slot: "s".into(),
        dir: BackupDir::new(t.path()),
        chain,
        chain_start: Lsn(0x10),
        resume: None,
        active_has_data: false,
        status_interval: Duration::from_secs(10),
        fsync_interval: Duration::from_secs(10),
        rotate_every: RotateEvery::default(),
        compress: None,
        active_len: 0,
        plugin_options: Vec::new(),
        server_major: 15,
    };
    Streamer::new(cfg, writer, None).0
}

/// Transactions queued behind a rotation are in the fresh active.sql before the streamer
/// hears that the seal is done: the next rotation must still seal them.
#[tokio::test]
async fn a_transaction_queued_behind_a_rotation_counts_as_data() {
    let t = tempfile::tempdir().unwrap();
    let mut s = streamer(&t);
    let mut none = None;
    s.written = Some(hdr(2).end_lsn);
    s.active_has_data = true;
    s.rotating = Some(Vec::new());
    // The seal covered transaction 1; transaction 2 was queued after it.
    let sealed = Sealed {
        path: t.path().join("sealed.sql"),
        size: 10,
        last_end_lsn: Some(hdr(1).end_lsn),
        manifest_error: None,
    };
    s.on_event(Event::Rotated(sealed), &mut none).await.unwrap();
    assert!(s.active_has_data);
    // Nothing queued behind it: empty.
    s.rotating = Some(Vec::new());
    let sealed = Sealed {
        path: t.path().join("sealed2.sql"),
        size: 10,
        last_end_lsn: Some(hdr(2).end_lsn),
        manifest_error: None,
    };
    s.on_event(Event::Rotated(sealed), &mut none).await.unwrap();
    assert!(!s.active_has_data);
    s.writer.close().await;
}

/// Between queueing a hand-over and hearing it is done, the old chain's tail may not be on
/// disk: the flush position must not jump to the new chain's start yet.
#[tokio::test]
async fn the_flush_position_waits_for_the_hand_over() {
    let t = tempfile::tempdir().unwrap();
    let mut s = streamer(&t);
    let mut none = None;
    let new = s
        .cfg
        .dir
        .create_chain(datetime!(2026-11-26 13:00:00 UTC))
        .unwrap();
    let start = hdr(10).commit_lsn;
    s.durable = Some(hdr(2).end_lsn);
    s.written = Some(hdr(5).end_lsn);
    s.server_end = start;
    s.next_chain = Some((new, start));
    s.maybe_hand_over(&mut none).await.unwrap();
    assert!(s.handing_over.is_some());
    assert_eq!(s.flush_position(), hdr(2).end_lsn);
    loop {
        let event = s.writer.events.recv().await.unwrap();
        let done = matches!(event, Event::HandedOver(_));
        s.on_event(event, &mut none).await.unwrap();
        if done {
            break;
        }
    }
    assert!(s.flush_position() >= start);
    s.writer.close().await;
}

/// `--rotate-every`: due by size or by interval, a seal is queued like a requested one (the
/// schedule then restarts); an active.sql of sequence records only is never sealed for it.
#[tokio::test]
async fn scheduled_rotations_seal_changes_only() {
    let t = tempfile::tempdir().unwrap();
    let mut s = streamer(&t);
    let mut none = None;
    s.cfg.rotate_every = RotateEvery {
        interval: Some(Duration::from_secs(3600)),
        size: Some(1000),
    };
    // Sequence records only: neither the size nor the interval seals.
    s.active_has_data = true;
    s.active_len = 5000;
    s.last_seal = tokio::time::Instant::now() - Duration::from_secs(7200);
    s.maybe_rotate_on_schedule(&mut none).await.unwrap();
    assert!(s.rotate_wanted.is_none() && s.seal_due_at().is_none());

    // Changes below the size, within the interval: not yet.
    s.active_has_changes = true;
    s.active_len = 999;
    s.last_seal = tokio::time::Instant::now();
    s.maybe_rotate_on_schedule(&mut none).await.unwrap();
    assert!(s.rotate_wanted.is_none());
    assert!(s.seal_due_at().unwrap() > tokio::time::Instant::now() + Duration::from_secs(3500));

    // The size reached within a second of the last seal: due a second after it.
    s.active_len = 1000;
    s.maybe_rotate_on_schedule(&mut none).await.unwrap();
    assert!(s.rotate_wanted.is_none());
    assert!(s.seal_due_at().unwrap() <= s.last_seal + Duration::from_secs(1));

    // A second later: a rotation without requester, waiting for the sequence record.
    s.last_seal = tokio::time::Instant::now() - Duration::from_secs(1);
    s.maybe_rotate_on_schedule(&mut none).await.unwrap();
    assert_eq!(s.rotate_wanted, Some(Vec::new()));
    assert!(matches!(s.barrier, Barrier::Recording(..)));
    // Once the record has been streamed past, the seal is queued and the schedule restarts.
    s.barrier = Barrier::At(Lsn(0x20), Instant::now());
    s.server_end = Lsn(0x20);
    s.maybe_rotate(&mut none).await.unwrap();
    assert_eq!(s.rotating, Some(Vec::new()));
    assert_eq!(s.active_len, 0);
    assert!(!s.active_has_changes && s.seal_due_at().is_none());

    // The interval run out: due as well.
    let t2 = tempfile::tempdir().unwrap();
    let mut s2 = streamer(&t2);
    s2.cfg.rotate_every = RotateEvery {
        interval: Some(Duration::from_secs(60)),
        size: None,
    };
    s2.active_has_data = true;
    s2.active_has_changes = true;
    s2.active_len = u64::MAX / 2;
    s2.last_seal = tokio::time::Instant::now() - Duration::from_secs(61);
    s2.barrier = Barrier::At(Lsn(0x20), Instant::now());
    s2.maybe_rotate_on_schedule(&mut none).await.unwrap();
    assert_eq!(s2.rotate_wanted, Some(Vec::new()));
    s.writer.close().await;
    s2.writer.close().await;
}

/// `--rotate-every` counts from the last seal on disk (else the chain's creation), not from
/// the streamer's start, so frequent restarts do not postpone the seals.
#[tokio::test]
async fn the_schedule_counts_from_the_last_seal_on_disk() {
    let t = tempfile::tempdir().unwrap();
    let s = streamer(&t);
    let now = tokio::time::Instant::now();
    // The chain was created on 2026-11-26: long before now, and no diff yet.
    assert!(rotation::last_seal_of(&s.cfg.chain) + Duration::from_secs(3600) < now);

    let two_hours_ago = time::OffsetDateTime::now_utc() - Duration::from_secs(7200);
    let name = DiffName {
        stamp: crate::storage::backup_dir::Stamp::from_time(two_hours_ago),
        method: crate::storage::compress::Method::None,
    };
    std::fs::write(s.cfg.chain.diff_path(name), b"").unwrap();
    let at = rotation::last_seal_of(&s.cfg.chain);
    let age = now.duration_since(at);
    assert!(
        age >= Duration::from_secs(7195) && age <= Duration::from_secs(7210),
        "{age:?}"
    );
    s.writer.close().await;
}
