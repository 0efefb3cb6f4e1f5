use proptest::prelude::*;

use super::*;

fn sid() -> impl Strategy<Value = SessionId> {
    (1u32..).prop_map(SessionId)
}

fn table_name() -> impl Strategy<Value = TableName> {
    prop::sample::select(TableName::ALL.to_vec())
}

fn toon() -> impl Strategy<Value = Name> {
    "[A-Za-z\u{e0}-\u{ff}]{1,12}-[A-Za-z #0-9]{1,20}".prop_map(|s| Name::sanitize(&s))
}

fn set() -> impl Strategy<Value = TableSet> {
    prop::collection::vec(table_name(), 0..5).prop_map(|v| v.into_iter().collect())
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

fn announce() -> impl Strategy<Value = Announce> {
    (table_name(), any::<u32>(), any::<u64>(), any::<u32>()).prop_map(
        |(table, total, bytes, crc)| Announce {
            table,
            total,
            bytes,
            crc,
        },
    )
}

fn checksums() -> impl Strategy<Value = Checksums> {
    prop::array::uniform5(prop::option::of(any::<u32>())).prop_map(Checksums)
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (toon(), toon(), 0u32..100).prop_map(|(toon, account, version)| Message::Online {
            toon,
            account,
            version
        }),
        (sid(), toon(), toon(), any::<bool>(), checksums()).prop_map(
            |(sid, toon, account, metadata, crcs)| Message::SyncRequest {
                sid,
                version: 2,
                toon,
                account,
                metadata,
                crcs
            }
        ),
        (sid(), set(), set()).prop_map(|(sid, done, partial)| Message::SyncAccept {
            sid,
            done,
            partial
        }),
        (sid(), toon()).prop_map(|(sid, with)| Message::SyncBusy { sid, with }),
        (sid(), announce()).prop_map(|(sid, announce)| Message::SyncInitiate { sid, announce }),
        (sid(), announce())
            .prop_map(|(sid, announce)| Message::SyncConfirmRequest { sid, announce }),
        (sid(), table_name(), ranges()).prop_map(|(sid, table, need)| Message::SyncReady {
            sid,
            table,
            need
        }),
        (sid(), table_name(), ranges()).prop_map(|(sid, table, missing)| {
            Message::SyncResend {
                sid,
                table,
                missing,
            }
        }),
        (sid(), table_name(), counts())
            .prop_map(|(sid, table, counts)| { Message::SyncConfirm { sid, table, counts } }),
        (sid(), prop::option::of(table_name()), ".{0,300}")
            .prop_map(|(sid, table, reason)| { Message::SyncError { sid, table, reason } }),
        (sid(), set()).prop_map(|(sid, tables)| Message::SyncCommit { sid, tables }),
        (sid(), any::<bool>()).prop_map(|(sid, written)| Message::SyncComplete { sid, written }),
    ]
}

/// Fields cut to fit (ranges, reasons) come back as a prefix of what was sent.
fn equivalent(sent: &Message, got: &Message) -> bool {
    match (sent, got) {
        (
            Message::SyncReady { need: a, .. } | Message::SyncResend { missing: a, .. },
            Message::SyncReady { need: b, .. } | Message::SyncResend { missing: b, .. },
        ) => a.0.starts_with(&b.0) && (a.is_empty() || !b.is_empty()),
        (Message::SyncError { reason: a, .. }, Message::SyncError { reason: b, .. }) => {
            clean_reason(a, MAX_MESSAGE).starts_with(b.as_str())
        }
        _ => sent == got,
    }
}

proptest! {
    #[test]
    fn every_message_round_trips_within_the_channel_limits(m in message()) {
        let bytes = m.encode();
        prop_assert!(bytes.len() <= MAX_MESSAGE, "{} bytes", bytes.len());
        prop_assert!(!bytes.contains(&0));
        let back = Message::decode(&bytes).unwrap();
        prop_assert!(equivalent(&m, &back), "{m:?} came back as {back:?}");
    }

    /// Any change of one byte, and any cut, is detected: a damaged message is never read as
    /// another message.
    #[test]
    fn damage_anywhere_is_detected(m in message(), at in any::<usize>(), to in any::<u8>(), cut in any::<usize>()) {
        let bytes = m.encode();
        let mut bad = bytes.clone();
        let i = at % bad.len();
        prop_assume!(bad[i] != to);
        bad[i] = to;
        prop_assert!(Message::decode(&bad).is_err());
        let cut = cut % bytes.len();
        prop_assert!(Message::decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn data_chunks_carry_any_bytes(payload in prop::collection::vec(any::<u8>().prop_filter("no NUL", |b| *b != 0), 0..=MAX_SLICE), toon in toon()) {
        let room = slice_room(&toon, TableName::GuildInfo, 99_999);
        let payload = payload[..payload.len().min(room)].to_vec();
        let m = Message::SyncData {
            sid: SessionId(7),
            toon,
            table: TableName::GuildInfo,
            index: 99_999,
            total: 99_999,
            payload,
        };
        let bytes = m.encode();
        prop_assert!(bytes.len() <= MAX_MESSAGE);
        prop_assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Message::decode(&bytes);
    }
}

#[test]
fn examples_from_the_protocol_document() {
    let m = Message::SyncConfirm {
        sid: SessionId(0x5f2a09c1),
        table: TableName::News,
        counts: Counts {
            received: 2,
            added: 2,
            ..Counts::default()
        },
    };
    let text = String::from_utf8(m.encode()).unwrap();
    let body = "SYNC_CONFIRM|5f2a09c1|news|2,2,0,0,0,0,0";
    assert_eq!(
        text,
        format!("{body}|{:08x}", crc32fast::hash(body.as_bytes()))
    );
    let accept = Message::SyncAccept {
        sid: SessionId(1),
        done: [TableName::Setup, TableName::News].into_iter().collect(),
        partial: TableSet::EMPTY,
    };
    assert!(
        String::from_utf8(accept.encode())
            .unwrap()
            .starts_with("SYNC_ACCEPT|00000001|setup,news||")
    );
}

#[test]
fn malformed_fields_are_refused() {
    let with_crc = |body: &str| {
        let mut b = body.as_bytes().to_vec();
        b.extend_from_slice(format!("|{:08x}", crc32fast::hash(body.as_bytes())).as_bytes());
        b
    };
    for body in [
        "SYNC_COMPLETE|00000001|2",
        "SYNC_COMPLETE|0000000G|1",
        "SYNC_COMPLETE|0000000A|1",
        "SYNC_COMPLETE|00000000|1",
        "SYNC_CONFIRM|00000001|news|1,2,3",
        "SYNC_CONFIRM|00000001|news|01,2,3,4,5,6,7",
        "SYNC_READY|00000001|news|3-1",
        "SYNC_READY|00000001|news|1-3,2",
        "SYNC_READY|00000001|nope|1",
        "SYNC_ACCEPT|00000001|news,news|",
        "SYNC_DATA|00000001|T|news|0|3|x",
        "SYNC_DATA|00000001|T|news|4|3|x",
        "ONLINE|00000001|T|A|2",
        "SYNC_BUSY|00000001|",
        "SYNC_REQUEST|00000001|2|T|A|m|-,-,-,-",
        "SYNC_REQUEST|00000001|2|T|A|x|-,-,-,-,-",
        "HELLO|00000001|x",
    ] {
        assert!(Message::decode(&with_crc(body)).is_err(), "{body}");
    }
    assert!(Message::decode(&with_crc("SYNC_COMPLETE|00000001|1")).is_ok());
    assert_eq!(
        Message::decode(b"SYNC_COMPLETE|00000001|1|00000000"),
        Err(WireError::Checksum)
    );
}

#[test]
fn names_are_made_fit_for_the_wire() {
    assert_eq!(Name::sanitize("a|b\nc").as_str(), "a_b_c");
    assert_eq!(Name::sanitize("").as_str(), "account");
    let long = "é".repeat(40);
    let n = Name::sanitize(&long);
    assert!(n.as_str().len() <= MAX_NAME);
    assert!(Name::new(&long).is_none());
    assert!(Name::new("123456789#1").is_some());
}

#[test]
fn impossible_sizes_are_recognized() {
    let a = |total, bytes| Announce {
        table: TableName::Roster,
        total,
        bytes,
        crc: 0,
    };
    assert!(a(1, 10).is_possible());
    assert!(a(3, 600).is_possible());
    assert!(!a(3, 601).is_possible());
    assert!(!a(0, 0).is_possible());
    assert!(!a(1 << 30, 1 << 30).is_possible());
    assert!(!a(10, 5).is_possible());
}

/// Every example message in docs/PROTOCOL.md decodes, and encodes back to the same bytes: the
/// document and the code cannot drift apart.
#[test]
fn the_protocol_documents_examples_are_exact() {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let mut checked = 0;
    for line in doc.lines() {
        let is_message = line.starts_with("ONLINE|") || line.starts_with("SYNC_");
        if !is_message || !line.contains('|') {
            continue;
        }
        let msg = Message::decode(line.as_bytes())
            .unwrap_or_else(|e| panic!("PROTOCOL.md example does not decode ({e:?}): {line}"));
        assert_eq!(
            String::from_utf8(msg.encode()).unwrap(),
            line,
            "PROTOCOL.md example does not re-encode to itself"
        );
        checked += 1;
    }
    assert!(
        checked >= 15,
        "only {checked} examples found in PROTOCOL.md"
    );
}
