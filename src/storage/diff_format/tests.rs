//! The format, the scanner and the cuts, checked on files written by hand.

use super::*;
use crate::storage::error::ChainError;
use std::io::{BufReader, Cursor};
use std::path::PathBuf;

use super::scanner::READ_BUF;
use crate::storage::error::Result;
use time::macros::datetime;

fn hdr(xid: u32, commit: u64, end: u64) -> TxnHeader {
    TxnHeader {
        xid,
        commit_lsn: Lsn(commit),
        end_lsn: Lsn(end),
        commit_time: datetime!(2026-11-26 12:00:00.123456 UTC)
            + time::Duration::seconds(xid as i64),
    }
}

fn txn(h: &TxnHeader, body: &str) -> String {
    format!("{}BEGIN;\n{body}COMMIT;\n{}", h.to_line(), h.trailer_line())
}

fn sample() -> (Vec<TxnHeader>, String) {
    let hs = vec![
        hdr(750, 0x100, 0x138),
        hdr(751, 0x200, 0x238),
        hdr(752, 0x300, 0x338),
    ];
    let s = hs
        .iter()
        .map(|h| txn(h, "INSERT INTO public.t (id) VALUES ('1');\n"))
        .collect();
    (hs, s)
}

fn scan(s: &[u8]) -> Result<(Vec<TxnBounds>, ScanEnd)> {
    let mut sc = DiffScanner::new(Cursor::new(s.to_vec()), "mem");
    let mut v = vec![];
    while let Some(t) = sc.next_txn()? {
        v.push(t);
    }
    Ok((v, sc.end().unwrap().clone()))
}

#[test]
fn header_matches_design_exactly() {
    let h = TxnHeader {
        xid: 750,
        commit_lsn: "0/1A2B3C4".parse().unwrap(),
        end_lsn: "0/1A2B3F8".parse().unwrap(),
        commit_time: datetime!(2026-11-26 12:00:00.123456 UTC),
    };
    let line = "-- wal2sql begin xid=750 commit_lsn=0/1A2B3C4 end_lsn=0/1A2B3F8 commit_time=2026-11-26T12:00:00.123456Z format=2\n";
    assert_eq!(h.to_line(), line);
    assert_eq!(TxnHeader::parse(line).unwrap(), h);
    assert_eq!(h.trailer_line(), "-- wal2sql commit end_lsn=0/1A2B3F8\n");
    assert_eq!(
        parse_trailer("-- wal2sql commit end_lsn=0/1A2B3F8").unwrap(),
        h.end_lsn
    );
}

#[test]
fn header_time_is_utc_with_microseconds() {
    let t = datetime!(2026-11-26 13:00:00 +01:00);
    assert_eq!(format_commit_time(t), "2026-11-26T12:00:00.000000Z");
    let h = TxnHeader::parse(
        "-- wal2sql begin commit_time=2026-11-26T12:00:00Z end_lsn=0/20 format=2 xid=1 commit_lsn=0/10 future=x",
    )
    .unwrap();
    assert_eq!(h.commit_time, datetime!(2026-11-26 12:00:00 UTC));
}

#[test]
fn header_rejects_bad_fields() {
    for bad in [
        "-- wal2sql begin xid=1 commit_lsn=0/10 end_lsn=0/20",
        "-- wal2sql begin xid=1 xid=2 commit_lsn=0/10 end_lsn=0/20 commit_time=2026-11-26T12:00:00Z",
        "-- wal2sql begin xid=-1 commit_lsn=0/10 end_lsn=0/20 commit_time=2026-11-26T12:00:00Z",
        "-- wal2sql begin xid=1 commit_lsn=0/10 end_lsn=0/10 commit_time=2026-11-26T12:00:00Z",
        "-- wal2sql begin xid=1 commit_lsn=0/10 end_lsn=0/20 commit_time=2026-11-26T12:00:00+01:00",
        "-- wal2sql begin xid=1  commit_lsn=0/10 end_lsn=0/20 commit_time=2026-11-26T12:00:00Z",
        "-- wal2sql commit end_lsn=0/20",
    ] {
        assert!(TxnHeader::parse(bad).is_err(), "{bad}");
    }
    assert!(parse_trailer("-- wal2sql commit end_lsn=0/2 0").is_err());
    assert!(parse_trailer("-- wal2sql commit lsn=0/20").is_err());
}

#[test]
fn scanner_finds_boundaries() {
    let (hs, s) = sample();
    let (v, end) = scan(s.as_bytes()).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].start, 0);
    for (i, t) in v.iter().enumerate() {
        assert_eq!(t.header, hs[i]);
        assert!(s[t.start as usize..].starts_with(HEADER_PREFIX));
        assert!(s[..t.end as usize].ends_with(&hs[i].trailer_line()));
        if i > 0 {
            assert_eq!(t.start, v[i - 1].end);
        }
    }
    assert!(end.is_complete());
    assert_eq!(end.last_end_lsn, Some(Lsn(0x338)));
}

#[test]
fn framed_text_is_skipped_unread() {
    let h = hdr(9, 0x1000, 0x1040);
    let ddl = format!(
        "CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $$SELECT '\n{}{}-- wal2sql commit end_lsn=0/1040\n-- wal2sql ddl bytes=1\n'$$;",
        hdr(10, 0x2000, 0x2040).to_line(),
        trailer_line(Lsn(0x999)),
    );
    let body = format!("-- wal2sql ddl bytes={}\n{ddl}\n", ddl.len());
    let s = txn(&h, &body);
    let (v, end) = scan(s.as_bytes()).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].end as usize, s.len());
    assert!(end.is_complete());
    // A wrong length makes the file corrupt, whichever way it is wrong.
    for n in [ddl.len() - 1, ddl.len() + 1, ddl.len() + 2] {
        let body = format!("-- wal2sql ddl bytes={n}\n{ddl}\n");
        assert!(scan(txn(&h, &body).as_bytes()).is_err(), "{n}");
    }
    // Outside framed text, only a frame line or the right trailer may start with "--".
    for line in [
        "-- a comment\n".to_string(),
        "--\n".to_string(),
        trailer_line(Lsn(0x999)),
        "-- wal2sql ddl bytes=01\nx\n".to_string(),
    ] {
        assert!(scan(txn(&h, &line).as_bytes()).is_err(), "{line}");
    }
}

#[test]
fn old_format_is_refused() {
    let e = TxnHeader::parse(
        "-- wal2sql begin xid=1 commit_lsn=0/10 end_lsn=0/20 commit_time=2026-11-26T12:00:00Z",
    )
    .unwrap_err();
    assert!(e.0.contains("older wal2sql"), "{e}");
    assert!(TxnHeader::parse(
        "-- wal2sql begin xid=1 commit_lsn=0/10 end_lsn=0/20 commit_time=2026-11-26T12:00:00Z format=3"
    )
    .is_err());
}

#[test]
fn messages_keep_the_framing_rules() {
    assert!(check_message(b"INSERT INTO public.t (a) VALUES (E'a\\nb');").is_ok());
    assert!(check_message(b"-- wal2sql ddl bytes=3\nx\ny").is_ok());
    for bad in [
        &b"-- wal2sql commit end_lsn=0/10"[..],
        b"INSERT INTO t VALUES ('a\nb');",
        b"-- wal2sql ddl bytes=4\nx\ny",
        b"-- x\ny",
        b"",
    ] {
        assert!(
            check_message(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn garbage_first_line_is_not_ours() {
    let e = scan(b"hello\n").unwrap_err();
    assert!(matches!(e, ChainError::NotADiff { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "file \"mem\" is not a wal2sql differential: first line: expected a transaction header"
    );
    let (_, s) = sample();
    let bad = format!("{s}SELECT 1;\n");
    match scan(bad.as_bytes()).unwrap_err() {
        ChainError::CorruptDiff { offset, .. } => assert_eq!(offset as usize, s.len()),
        e => panic!("{e}"),
    }
}

#[test]
fn out_of_order_is_reported() {
    let s = txn(&hdr(2, 0x200, 0x238), "") + &txn(&hdr(1, 0x100, 0x138), "");
    assert!(matches!(
        scan(s.as_bytes()).unwrap_err(),
        ChainError::OutOfOrder { .. }
    ));
}

#[test]
fn long_lines_are_body_and_cost_no_memory() {
    let h = hdr(1, 0x10, 0x20);
    let mut big = String::from("INSERT INTO t VALUES ('");
    big.push_str(&"x".repeat(3 * READ_BUF + 17));
    big.push_str(&trailer_line(Lsn(0x20)));
    big.push('\n');
    let s = txn(&h, &big);
    let mut sc = DiffScanner::new(BufReader::with_capacity(4096, Cursor::new(s.clone())), "m");
    let t = sc.next_txn().unwrap().unwrap();
    assert_eq!(t.end as usize, s.len());
    assert!(sc.head.capacity() <= 2 * (MARKER_MAX + 1));
}

fn write_tmp(dir: &tempfile::TempDir, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn recovery_cuts_every_kind_of_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = sample();
    let next = txn(&hdr(800, 0x900, 0x938), "UPDATE t SET a = '1';\n");
    // Every proper prefix of the next transaction is a possible crash point.
    for cut in 0..next.len() {
        let data = format!("{good}{}", &next[..cut]);
        let p = write_tmp(&dir, "active.sql", data.as_bytes());
        let r = recover_torn_tail(&p).unwrap();
        assert_eq!(r.valid_len as usize, good.len(), "cut {cut}");
        assert_eq!(r.cut_bytes as usize, cut);
        assert_eq!(r.last_end_lsn, Some(Lsn(0x338)));
        assert_eq!(std::fs::read(&p).unwrap(), good.as_bytes());
    }
    // And of the very first transaction.
    for cut in 0..good.len() {
        let p = write_tmp(&dir, "first.sql", &good.as_bytes()[..cut]);
        let r = recover_torn_tail(&p).unwrap();
        assert!(r.valid_len as usize <= cut);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), r.valid_len);
    }
    let full = format!("{good}{next}");
    let p = write_tmp(&dir, "whole.sql", full.as_bytes());
    let r = recover_torn_tail(&p).unwrap();
    assert_eq!((r.cut_bytes, r.last_end_lsn), (0, Some(Lsn(0x938))));
}

#[test]
fn recovery_handles_empty_and_nul_tails() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_tmp(&dir, "empty.sql", b"");
    let r = recover_torn_tail(&p).unwrap();
    assert_eq!(
        r,
        Recovery {
            last_end_lsn: None,
            valid_len: 0,
            cut_bytes: 0
        }
    );
    let (_, good) = sample();
    let mut data = good.clone().into_bytes();
    data.extend_from_slice(&[0u8; 4096]);
    let p = write_tmp(&dir, "nul.sql", &data);
    assert_eq!(recover_torn_tail(&p).unwrap().cut_bytes, 4096);
    let p = write_tmp(&dir, "allnul.sql", &[0u8; 100]);
    assert_eq!(recover_torn_tail(&p).unwrap().valid_len, 0);
}

#[test]
fn recovery_refuses_files_that_are_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = sample();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x7fELF\x02\x01\x01 binary".to_vec()),
        ("text", b"SELECT 1;\nSELECT 2;\n".to_vec()),
        ("midgarbage", format!("{good}oops").into_bytes()),
        ("badheader", b"-- wal2sql begin xid=zz\nBEGIN;\n".to_vec()),
    ];
    for (name, data) in cases {
        let p = write_tmp(&dir, name, &data);
        assert!(recover_torn_tail(&p).is_err(), "{name}");
        assert_eq!(std::fs::read(&p).unwrap(), data, "{name} untouched");
    }
    // A torn transaction followed by a complete one: only a human may cut that.
    let torn = format!(
        "{good}{}BEGIN;\n{}",
        hdr(900, 0x1000, 0x1038).to_line(),
        txn(&hdr(901, 0x2000, 0x2038), "")
    );
    let p = write_tmp(&dir, "stray", torn.as_bytes());
    assert!(matches!(
        recover_torn_tail(&p).unwrap_err(),
        ChainError::CorruptDiff { .. }
    ));
    assert_eq!(std::fs::read(&p).unwrap(), torn.as_bytes());
    let e = recover_torn_tail(&dir.path().join("missing")).unwrap_err();
    assert!(e.to_string().starts_with("could not open file"), "{e}");
}

#[test]
fn sealed_diffs_must_be_complete() {
    let (_, good) = sample();
    let sc = DiffScanner::new(Cursor::new(good.clone()), "d");
    assert!(sc.finish_complete().is_ok());
    let torn = &good[..good.len() - 1];
    let sc = DiffScanner::new(Cursor::new(torn.to_string()), "d");
    let e = sc.finish_complete().unwrap_err();
    assert!(
        matches!(e, ChainError::TornDiff { xid: Some(752), .. }),
        "{e}"
    );
}

#[test]
fn copies_transactions_past_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (hs, good) = sample();
    let torn = format!("{good}{}BEGIN;\n", hdr(999, 0x5000, 0x5038).to_line());
    let p = write_tmp(&dir, "active.sql", torn.as_bytes());
    for (cut, expect_from) in [
        (0x0, 0usize),
        (0x101, 1),
        (0x200, 1),
        (0x300, 2),
        (0x301, 3),
    ] {
        let mut out = Vec::new();
        let s = copy_from_cut(&p, Lsn(cut), &mut out).unwrap();
        let (v, _) = scan(good.as_bytes()).unwrap();
        if expect_from == 3 {
            assert_eq!(s, CopySummary::default());
            assert!(out.is_empty());
            continue;
        }
        let from = v[expect_from].start as usize;
        assert_eq!(out, good.as_bytes()[from..]);
        assert_eq!(s.from, Some(from as u64));
        assert_eq!(s.txns as usize, 3 - expect_from);
        assert_eq!(s.last_end_lsn, Some(hs[2].end_lsn));
    }
}

#[test]
fn finds_where_up_to_stops() {
    let (hs, good) = sample();
    let mut sc = DiffScanner::new(Cursor::new(good.clone()), "d");
    let t = find_stop(&mut sc, StopAt::Time(hs[0].commit_time))
        .unwrap()
        .unwrap();
    assert_eq!(t.header.xid, 751);
    let mut sc = DiffScanner::new(Cursor::new(good.clone()), "d");
    let t = find_stop(&mut sc, StopAt::Lsn(Lsn(0x200)))
        .unwrap()
        .unwrap();
    assert_eq!(t.header.xid, 752);
    let mut sc = DiffScanner::new(Cursor::new(good), "d");
    assert!(
        find_stop(&mut sc, StopAt::Lsn(Lsn(0x300)))
            .unwrap()
            .is_none()
    );
}

#[test]
fn reads_last_end_lsn_from_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = sample();
    let p = write_tmp(&dir, "d.sql", good.as_bytes());
    assert_eq!(last_end_lsn_of_sealed(&p).unwrap(), Some(Lsn(0x338)));
    let p = write_tmp(&dir, "e.sql", b"");
    assert_eq!(last_end_lsn_of_sealed(&p).unwrap(), None);
    let p = write_tmp(&dir, "t.sql", &good.as_bytes()[..good.len() - 3]);
    assert!(last_end_lsn_of_sealed(&p).is_err());
}
