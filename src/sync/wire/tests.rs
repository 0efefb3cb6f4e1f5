use proptest::prelude::*;

use super::*;

fn sid() -> impl Strategy<Value = SessionId> {
    any::<u32>().prop_map(SessionId)
}

fn table_name() -> impl Strategy<Value = TableName> {
    prop::sample::select(TableName::ALL.to_vec())
}

fn toon() -> impl Strategy<Value = String> {
    "[A-Za-z\u{e0}-\u{ff}]{1,12}-[A-Za-z #0-9]{1,20}"
}

fn ranges() -> impl Strategy<Value = Ranges> {
    prop::collection::btree_set(1u32..5000, 0..200).prop_map(Ranges::from_sorted)
}

fn counts() -> impl Strategy<Value = Counts> {
    prop::array::uniform7(0u64..100_000).prop_map(|c| Counts {
        received: c[0],
        added: c[1],
        updated: c[2],
        unchanged: c[3],
        kept_newer: c[4],
        conflicts: c[5],
        skipped: c[6],
    })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (sid(), toon()).prop_map(|(sid, toon)| Message::Online { sid, toon }),
        (sid(), toon(), toon(), any::<bool>()).prop_map(|(sid, toon, account, metadata)| {
            Message::SyncRequest {
                sid,
                toon,
                account,
                metadata,
            }
        }),
        (sid(), prop::collection::vec(table_name(), 0..5))
            .prop_map(|(sid, done)| Message::SyncAccept { sid, done }),
        (sid(), toon()).prop_map(|(sid, with)| Message::SyncBusy { sid, with }),
        (
            sid(),
            table_name(),
            any::<u32>(),
            any::<u64>(),
            any::<u32>()
        )
            .prop_map(|(sid, table, total, bytes, crc)| Message::SyncInitiate {
                sid,
                table,
                total,
                bytes,
                crc
            }),
        (
            sid(),
            table_name(),
            any::<u32>(),
            any::<u64>(),
            any::<u32>()
        )
            .prop_map(
                |(sid, table, total, bytes, crc)| Message::SyncConfirmRequest {
                    sid,
                    table,
                    total,
                    bytes,
                    crc
                }
            ),
        (sid(), table_name(), ranges()).prop_map(|(sid, table, need)| Message::SyncReady {
            sid,
            table,
            need
        }),
        (sid(), table_name(), ranges()).prop_map(|(sid, table, missing)| Message::SyncResend {
            sid,
            table,
            missing
        }),
        (sid(), table_name(), counts()).prop_map(|(sid, table, counts)| Message::SyncConfirm {
            sid,
            table,
            counts
        }),
        (sid(), prop::option::of(table_name()), ".{0,300}")
            .prop_map(|(sid, table, reason)| Message::SyncError { sid, table, reason }),
        (sid(), any::<bool>()).prop_map(|(sid, written)| Message::SyncComplete { sid, written }),
        (
            sid(),
            toon(),
            table_name(),
            1u32..100_000,
            1u32..100_000,
            prop::collection::vec(1u8..=255, 0..MAX_SLICE)
        )
            .prop_map(|(sid, toon, table, index, total, payload)| {
                let room = MAX_MESSAGE - data_header_len(&toon, table, index, total);
                let payload = payload[..payload.len().min(room)].to_vec();
                let crc = chunk_crc(table, index, total, &payload);
                Message::SyncData {
                    sid,
                    toon,
                    table,
                    index,
                    total,
                    crc,
                    payload,
                }
            }),
    ]
}

proptest! {
    #[test]
    fn messages_fit_the_channel_and_read_back(m in message()) {
        let bytes = m.encode();
        prop_assert!(bytes.len() <= MAX_MESSAGE, "{} bytes", bytes.len());
        prop_assert!(!bytes.contains(&0));
        let back = Message::decode(&bytes).unwrap();
        match (&m, &back) {
            // Ranges and reasons are cut to fit: what comes back is a prefix.
            (Message::SyncReady { need: a, .. }, Message::SyncReady { need: b, .. })
            | (Message::SyncResend { missing: a, .. }, Message::SyncResend { missing: b, .. }) => {
                prop_assert!(a.0.starts_with(&b.0));
                prop_assert!(!b.is_empty() || a.is_empty());
            }
            (Message::SyncError { reason: a, .. }, Message::SyncError { reason: b, .. }) => {
                let cleaned: String = a.chars().map(|c| if c == '|' || c.is_control() { ' ' } else { c }).collect();
                prop_assert!(cleaned.starts_with(b.as_str()));
            }
            _ => prop_assert_eq!(&m, &back),
        }
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn damaged_messages_never_panic(m in message(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut bytes = m.encode();
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = Message::decode(&bytes);
            bytes.truncate(cut.index(bytes.len()));
            let _ = Message::decode(&bytes);
        }
    }
}

#[test]
fn examples_read_as_documented() {
    let m = Message::decode(b"SYNC_INITIATE|0000002a|roster|3|512|deadbeef").unwrap();
    assert_eq!(
        m,
        Message::SyncInitiate {
            sid: SessionId(42),
            table: TableName::Roster,
            total: 3,
            bytes: 512,
            crc: 0xdeadbeef
        }
    );
    let m =
        Message::decode(b"SYNC_DATA|0000002a|Heretanky-Velen|news|1|2|00000000|{\"a\":\"x|y\"}")
            .unwrap();
    let Message::SyncData { payload, .. } = m else {
        panic!()
    };
    assert_eq!(payload, b"{\"a\":\"x|y\"}");
    assert_eq!(
        Message::decode(b"SYNC_RESEND|0000002a|news|1-3,7").unwrap(),
        Message::SyncResend {
            sid: SessionId(42),
            table: TableName::News,
            missing: Ranges(vec![(1, 3), (7, 7)])
        }
    );
    for bad in [
        &b""[..],
        b"HELLO|0000002a",
        b"SYNC_INITIATE|2a|roster|3|512|deadbeef",
        b"SYNC_INITIATE|0000002a|lunch|3|512|deadbeef",
        b"SYNC_INITIATE|0000002a|roster|3|512",
        b"SYNC_RESEND|0000002a|news|3-1",
        b"SYNC_RESEND|0000002a|news|0",
        b"SYNC_CONFIRM|0000002a|news|1,2,3",
        b"SYNC_COMPLETE|0000002a|yes",
        b"ONLINE|0000002a|a\0b",
    ] {
        assert!(
            Message::decode(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(Message::decode(&[b'x'; 256]), Err(WireError::TooLong));
}
