//! Pure encode/parse functions for the replication sub-protocol carried inside CopyBoth: the
//! CopyBothResponse header, XLogData (`w`), primary keepalive (`k`) and standby status update
//! (`r`), plus the [`PgTimestamp`] type they carry (with the crate's [`Lsn`]). No I/O happens here, so every
//! function is tested byte for byte.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub use crate::lsn::{Lsn, ParseLsnError};

/// Seconds between the Unix epoch and PostgreSQL's epoch, 2000-01-01 00:00:00 UTC.
pub(crate) const PG_EPOCH_OFFSET_SECS: u64 = 946_684_800;

/// A PostgreSQL wire timestamp: microseconds since 2000-01-01 00:00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PgTimestamp(pub i64);

impl PgTimestamp {
    pub fn now() -> PgTimestamp {
        PgTimestamp::from_system_time(SystemTime::now())
    }

    pub(crate) fn from_system_time(t: SystemTime) -> PgTimestamp {
        let pg_epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_OFFSET_SECS);
        match t.duration_since(pg_epoch) {
            Ok(d) => PgTimestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            Err(e) => PgTimestamp(-i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX)),
        }
    }

    #[cfg(test)]
    pub(crate) fn to_system_time(self) -> SystemTime {
        let pg_epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_OFFSET_SECS);
        let magnitude = Duration::from_micros(self.0.unsigned_abs());
        if self.0 >= 0 {
            pg_epoch + magnitude
        } else {
            pg_epoch - magnitude
        }
    }
}

/// A malformed replication message: a protocol violation by the server (or a bug here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

/// Message tag of CopyBothResponse, which `backend::Message::parse` does not know.
pub(crate) const COPY_BOTH_RESPONSE_TAG: u8 = b'W';
pub(crate) const XLOG_DATA_TAG: u8 = b'w';
pub(crate) const PRIMARY_KEEPALIVE_TAG: u8 = b'k';
pub(crate) const STANDBY_STATUS_UPDATE_TAG: u8 = b'r';

/// The body of a CopyBothResponse (`W`): overall format and per-column formats. Walsenders send
/// format 0 with no columns; it is parsed fully anyway so a malformed frame is noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyBothResponse {
    pub format: u8,
    pub column_formats: Vec<u16>,
}

/// Parses the body of a `W` message (without tag and length).
pub(crate) fn parse_copy_both_response(mut body: &[u8]) -> Result<CopyBothResponse, CodecError> {
    if body.len() < 3 {
        return Err(CodecError("CopyBothResponse too short".into()));
    }
    let format = body.get_u8();
    let ncols = body.get_i16();
    let ncols = usize::try_from(ncols)
        .map_err(|_| CodecError("CopyBothResponse with negative column count".into()))?;
    if body.len() != ncols * 2 {
        return Err(CodecError(format!(
            "CopyBothResponse announces {ncols} columns but has {} bytes for them",
            body.len()
        )));
    }
    let column_formats = (0..ncols).map(|_| body.get_u16()).collect();
    Ok(CopyBothResponse {
        format,
        column_formats,
    })
}

/// A chunk of decoded WAL: for logical replication, one output-plugin message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XLogData {
    /// The plugin's write position for this message. For logical decoding this is the change's
    /// LSN, or the transaction's end LSN for a COMMIT; it can be 0/0 (e.g. a deferred BEGIN).
    pub data_start: Lsn,
    /// The end of WAL on the server when it was sent.
    pub wal_end: Lsn,
    pub send_time: PgTimestamp,
    /// The plugin output, sharing the receive buffer's memory.
    pub data: Bytes,
}

/// A primary keepalive (`k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimaryKeepalive {
    /// The walsender's sent position: everything before it has been delivered.
    pub wal_end: Lsn,
    pub send_time: PgTimestamp,
    /// The server wants a status update now (timeout approaching, or shutting down).
    pub reply_requested: bool,
}

/// A message received inside the CopyBoth stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplMessage {
    XLogData(XLogData),
    Keepalive(PrimaryKeepalive),
}

const XLOG_DATA_HEADER_LEN: usize = 1 + 8 + 8 + 8;
const KEEPALIVE_LEN: usize = 1 + 8 + 8 + 1;

/// Parses the payload of a backend CopyData message. Zero-copy: the XLogData payload is a slice of
/// `data`.
pub(crate) fn parse_copy_data(mut data: Bytes) -> Result<ReplMessage, CodecError> {
    let Some(&tag) = data.first() else {
        return Err(CodecError("empty CopyData message".into()));
    };
    match tag {
        XLOG_DATA_TAG => {
            if data.len() < XLOG_DATA_HEADER_LEN {
                return Err(CodecError(format!(
                    "streaming header too small: {} bytes",
                    data.len()
                )));
            }
            data.advance(1);
            let data_start = Lsn(data.get_u64());
            let wal_end = Lsn(data.get_u64());
            let send_time = PgTimestamp(data.get_i64());
            Ok(ReplMessage::XLogData(XLogData {
                data_start,
                wal_end,
                send_time,
                data,
            }))
        }
        PRIMARY_KEEPALIVE_TAG => {
            if data.len() < KEEPALIVE_LEN {
                return Err(CodecError(format!(
                    "keepalive message too small: {} bytes",
                    data.len()
                )));
            }
            data.advance(1);
            let wal_end = Lsn(data.get_u64());
            let send_time = PgTimestamp(data.get_i64());
            let reply_requested = data.get_u8() != 0;
            Ok(ReplMessage::Keepalive(PrimaryKeepalive {
                wal_end,
                send_time,
                reply_requested,
            }))
        }
        other => Err(CodecError(format!(
            "unrecognized streaming header: \"{}\"",
            char::from(other).escape_default()
        ))),
    }
}

/// A standby status update (`r`). Positions are "last byte + 1". For a logical slot only `flush`
/// moves `confirmed_flush_lsn`; `write` and `apply` show up in `pg_stat_replication` and matter
/// for synchronous replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandbyStatusUpdate {
    pub write: Lsn,
    pub flush: Lsn,
    pub apply: Lsn,
    pub client_time: PgTimestamp,
    /// Ask the server to answer with a keepalive at once.
    pub reply_requested: bool,
}

/// Length of an encoded `r` payload.
pub(crate) const STANDBY_STATUS_UPDATE_LEN: usize = 1 + 8 + 8 + 8 + 8 + 1;

/// Appends the CopyData payload of a status update (34 bytes, without the CopyData framing).
pub(crate) fn encode_standby_status_update(msg: &StandbyStatusUpdate, out: &mut BytesMut) {
    out.reserve(STANDBY_STATUS_UPDATE_LEN);
    out.put_u8(STANDBY_STATUS_UPDATE_TAG);
    out.put_u64(msg.write.0);
    out.put_u64(msg.flush.0);
    out.put_u64(msg.apply.0);
    out.put_i64(msg.client_time.0);
    out.put_u8(u8::from(msg.reply_requested));
}

/// Appends a complete frontend CopyData message (`d`, length, payload) holding a status update.
pub(crate) fn encode_standby_status_message(msg: &StandbyStatusUpdate, out: &mut BytesMut) {
    out.reserve(5 + STANDBY_STATUS_UPDATE_LEN);
    out.put_u8(b'd');
    out.put_i32(4 + STANDBY_STATUS_UPDATE_LEN as i32);
    encode_standby_status_update(msg, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_use_the_postgres_epoch() {
        let pg_epoch = UNIX_EPOCH + Duration::from_secs(946_684_800);
        assert_eq!(PgTimestamp::from_system_time(pg_epoch), PgTimestamp(0));
        let later = pg_epoch + Duration::from_micros(1_500_000);
        assert_eq!(PgTimestamp::from_system_time(later), PgTimestamp(1_500_000));
        assert_eq!(PgTimestamp(1_500_000).to_system_time(), later);
        assert_eq!(
            PgTimestamp::from_system_time(UNIX_EPOCH).0,
            -946_684_800_000_000
        );
        assert_eq!(
            PgTimestamp(-946_684_800_000_000).to_system_time(),
            UNIX_EPOCH
        );
    }

    #[test]
    fn copy_both_response() {
        assert_eq!(
            parse_copy_both_response(&[0, 0, 0]).unwrap(),
            CopyBothResponse {
                format: 0,
                column_formats: vec![]
            }
        );
        assert_eq!(
            parse_copy_both_response(&[1, 0, 2, 0, 1, 0, 0]).unwrap(),
            CopyBothResponse {
                format: 1,
                column_formats: vec![1, 0]
            }
        );
        assert!(parse_copy_both_response(&[0, 0]).is_err());
        assert!(parse_copy_both_response(&[0, 0, 1]).is_err());
        assert!(parse_copy_both_response(&[0, 0xFF, 0xFF]).is_err());
    }

    #[test]
    fn xlog_data() {
        let mut raw = vec![b'w'];
        raw.extend_from_slice(&0x0000_0001_0000_0002u64.to_be_bytes());
        raw.extend_from_slice(&0x0000_0003_0000_0004u64.to_be_bytes());
        raw.extend_from_slice(&(-5i64).to_be_bytes());
        raw.extend_from_slice(b"BEGIN 750");
        let msg = parse_copy_data(Bytes::from(raw)).unwrap();
        assert_eq!(
            msg,
            ReplMessage::XLogData(XLogData {
                data_start: Lsn(0x1_0000_0002),
                wal_end: Lsn(0x3_0000_0004),
                send_time: PgTimestamp(-5),
                data: Bytes::from_static(b"BEGIN 750"),
            })
        );
        let empty_payload = [b"w".as_slice(), &[0u8; 24]].concat();
        match parse_copy_data(Bytes::from(empty_payload)).unwrap() {
            ReplMessage::XLogData(x) => assert!(x.data.is_empty()),
            other => panic!("{other:?}"),
        }
        assert!(parse_copy_data(Bytes::from([b"w".as_slice(), &[0u8; 23]].concat())).is_err());
    }

    #[test]
    fn keepalive() {
        let raw: &[u8] = &[
            b'k', 0, 0, 0, 0x16, 0xB3, 0x74, 0xD8, 0x48, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 1,
        ];
        assert_eq!(
            parse_copy_data(Bytes::copy_from_slice(raw)).unwrap(),
            ReplMessage::Keepalive(PrimaryKeepalive {
                wal_end: "16/B374D848".parse().unwrap(),
                send_time: PgTimestamp(256),
                reply_requested: true,
            })
        );
        let mut no_reply = raw.to_vec();
        no_reply[17] = 0;
        match parse_copy_data(Bytes::from(no_reply)).unwrap() {
            ReplMessage::Keepalive(k) => assert!(!k.reply_requested),
            other => panic!("{other:?}"),
        }
        assert!(parse_copy_data(Bytes::copy_from_slice(&raw[..17])).is_err());
    }

    #[test]
    fn unknown_and_empty_copy_data() {
        let e = parse_copy_data(Bytes::from_static(b"q123")).unwrap_err();
        assert_eq!(e.0, "unrecognized streaming header: \"q\"");
        assert!(parse_copy_data(Bytes::new()).is_err());
    }

    #[test]
    fn standby_status_update_bytes() {
        let msg = StandbyStatusUpdate {
            write: Lsn(0x0102_0304_0506_0708),
            flush: Lsn(0x1112_1314_1516_1718),
            apply: Lsn(0x2122_2324_2526_2728),
            client_time: PgTimestamp(0x3132_3334_3536_3738),
            reply_requested: true,
        };
        let mut out = BytesMut::new();
        encode_standby_status_message(&msg, &mut out);
        let expected: &[u8] = &[
            b'd', 0, 0, 0, 38, b'r', //
            1, 2, 3, 4, 5, 6, 7, 8, //
            0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, //
            0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, //
            0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, //
            1,
        ];
        assert_eq!(&out[..], expected);

        // The framing matches what postgres-protocol would produce for the same payload.
        let mut payload = BytesMut::new();
        encode_standby_status_update(
            &StandbyStatusUpdate {
                reply_requested: false,
                ..msg
            },
            &mut payload,
        );
        assert_eq!(payload.len(), STANDBY_STATUS_UPDATE_LEN);
        assert_eq!(payload[33], 0);
        let mut framed = BytesMut::new();
        postgres_protocol::message::frontend::CopyData::new(payload.freeze())
            .unwrap()
            .write(&mut framed);
        assert_eq!(&framed[..33], &expected[..33]);
    }
}
