use super::*;
use crate::protocol::chunk::{Payload, slices};
use crate::protocol::{MAX_SESSION_MS, SESSION_TIMEOUT_MS};

const T0: Millis = 1_800_000_000_000;

fn me() -> Endpoint {
    Endpoint {
        info: PeerInfo {
            addr: "local/BRAVO".into(),
            account: "BRAVO".into(),
            toon: String::new(),
            file: "/wow/BRAVO/GuildHelper.lua".into(),
        },
        target: Target::SharedDataRemote,
    }
}

/// Plays the driver: answers every request at once, keeps what a store would keep.
#[derive(Default)]
struct Driver {
    sent: Vec<(String, Message)>,
    events: Vec<RxEvent>,
    persisted: BTreeMap<SessionId, SessionRecord>,
    journal: BTreeMap<(SessionId, TableName), crate::protocol::chunk::Chunks>,
    staged: BTreeMap<(SessionId, TableName), Vec<u8>>,
    commits: u32,
    /// Staged tables that fail their check at the next open.
    damaged: TableSet,
    fail_open: Option<String>,
}

impl Driver {
    fn pump(&mut self, rx: &mut Receiver, now: Millis) {
        while let Some(o) = rx.poll() {
            match o {
                RxOut::Send { to, msg } => self.sent.push((to, msg)),
                RxOut::Event(e) => self.events.push(e),
                RxOut::Request(r) => match r {
                    RxRequest::Open {
                        sid,
                        staged,
                        journals,
                    } => {
                        let result = match self.fail_open.take() {
                            Some(reason) => Err(reason.into()),
                            None => Ok(Opened {
                                staged: staged
                                    .iter()
                                    .map(|(t, _)| *t)
                                    .filter(|t| {
                                        !self.damaged.contains(*t)
                                            && self.staged.contains_key(&(sid, *t))
                                    })
                                    .collect(),
                                chunks: journals
                                    .iter()
                                    .filter_map(|(t, _)| {
                                        self.journal.get(&(sid, *t)).map(|c| (*t, c.clone()))
                                    })
                                    .collect(),
                            }),
                        };
                        rx.opened(now, result);
                    }
                    RxRequest::Journal {
                        sid,
                        table,
                        index,
                        payload,
                        ..
                    } => self
                        .journal
                        .entry((sid, table))
                        .or_default()
                        .push((index, payload)),
                    RxRequest::Forget { sid, table } => {
                        self.journal.remove(&(sid, table));
                        self.staged.remove(&(sid, table));
                    }
                    RxRequest::Stage {
                        sid,
                        table,
                        payload,
                        ..
                    } => {
                        self.staged.insert((sid, table), payload);
                        rx.staged(
                            table,
                            Ok(Counts {
                                received: 1,
                                added: 1,
                                ..Counts::default()
                            }),
                        );
                    }
                    RxRequest::Commit { .. } => {
                        self.commits += 1;
                        rx.committed(now, Ok(true));
                    }
                    RxRequest::Persist(r) => {
                        self.persisted.insert(r.id, *r);
                    }
                    RxRequest::Close { .. } => {}
                },
            }
        }
    }

    fn take_sent(&mut self) -> Vec<Message> {
        self.sent.drain(..).map(|(_, m)| m).collect()
    }
}

fn request(sid: u32, account: &str, payloads: &[Payload]) -> Message {
    let mut crcs = Checksums::default();
    for p in payloads {
        crcs.set(p.table, p.crc);
    }
    Message::SyncRequest {
        sid: SessionId(sid),
        version: VERSION,
        toon: Name::sanitize("Toon-Realm"),
        account: Name::sanitize(account),
        metadata: false,
        crcs,
    }
}

fn announce(p: &Payload) -> Announce {
    let bytes = p.packed.to_vec().expect("a payload unpacks");
    Announce {
        table: p.table,
        total: slices(&bytes, &Name::sanitize("Toon-Realm"), p.table).len() as u32,
        bytes: bytes.len() as u64,
        crc: p.crc,
    }
}

fn chunks(sid: SessionId, p: &Payload) -> Vec<Message> {
    let toon = Name::sanitize("Toon-Realm");
    let bytes = p.packed.to_vec().expect("a payload unpacks");
    let s = slices(&bytes, &toon, p.table);
    let total = s.len() as u32;
    s.into_iter()
        .enumerate()
        .map(|(i, r)| Message::SyncData {
            sid,
            toon: toon.clone(),
            table: p.table,
            index: i as u32 + 1,
            total,
            payload: bytes[r].to_vec(),
        })
        .collect()
}

fn news() -> Payload {
    Payload::new(TableName::News, vec![b'n'; 700])
}

fn roster() -> Payload {
    Payload::new(TableName::Roster, vec![b'r'; 300])
}

/// A whole sync, in the two flights a sender makes.
fn full_sync(rx: &mut Receiver, d: &mut Driver, from: &str, sid: u32, now: Millis) -> SessionId {
    let ps = [news(), roster()];
    rx.handle(now, from, request(sid, "ALPHA", &ps));
    d.pump(rx, now);
    let accepted = match d.take_sent().pop() {
        Some(Message::SyncAccept { sid, .. }) => sid,
        other => panic!("{other:?}"),
    };
    for p in &ps {
        rx.handle(
            now,
            from,
            Message::SyncInitiate {
                sid: accepted,
                announce: announce(p),
            },
        );
        for c in chunks(accepted, p) {
            rx.handle(now, from, c);
        }
        rx.handle(
            now,
            from,
            Message::SyncConfirmRequest {
                sid: accepted,
                announce: announce(p),
            },
        );
    }
    rx.handle(
        now,
        from,
        Message::SyncCommit {
            sid: accepted,
            tables: ps.iter().map(|p| p.table).collect(),
        },
    );
    d.pump(rx, now);
    accepted
}

#[test]
fn a_fresh_sync_is_accepted_staged_confirmed_and_committed() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver::default();
    let sid = full_sync(&mut rx, &mut d, "local/ALPHA", 42, T0);
    assert_eq!(sid, SessionId(42));
    let kinds: Vec<&str> = d.take_sent().iter().map(|m| m.kind()).collect();
    assert_eq!(kinds, ["SYNC_CONFIRM", "SYNC_CONFIRM", "SYNC_COMPLETE"]);
    assert_eq!(d.commits, 1);
    let r = &d.persisted[&sid];
    assert_eq!(r.state, SessionState::Complete);
    assert_eq!(r.written, Some(true));
    assert!(r.tables.values().all(|p| p.status == TableStatus::Complete));
    // The commit's answer was lost: a repeated SYNC_COMMIT gets it again, without a second
    // write; so does a repeated confirmation request.
    rx.handle(
        T0 + 5,
        "local/ALPHA",
        Message::SyncCommit {
            sid,
            tables: TableSet::EMPTY,
        },
    );
    rx.handle(
        T0 + 5,
        "local/ALPHA",
        Message::SyncConfirmRequest {
            sid,
            announce: announce(&news()),
        },
    );
    d.pump(&mut rx, T0 + 5);
    let kinds: Vec<&str> = d.take_sent().iter().map(|m| m.kind()).collect();
    assert_eq!(kinds, ["SYNC_COMPLETE", "SYNC_CONFIRM"]);
    assert_eq!(d.commits, 1);
    // A restarted receiver answers from its records.
    let mut rx = Receiver::new(me(), d.persisted.values().cloned().collect());
    rx.handle(
        T0 + 6,
        "local/ALPHA",
        Message::SyncCommit {
            sid,
            tables: TableSet::EMPTY,
        },
    );
    d.pump(&mut rx, T0 + 6);
    assert_eq!(
        d.take_sent(),
        [Message::SyncComplete { sid, written: true }]
    );
}

#[test]
fn another_sender_is_told_busy_until_the_session_expires() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver::default();
    rx.handle(T0, "local/ALPHA", request(1, "ALPHA", &[news()]));
    d.pump(&mut rx, T0);
    d.take_sent();
    rx.handle(T0 + 1000, "local/CHARLIE", request(2, "CHARLIE", &[news()]));
    d.pump(&mut rx, T0 + 1000);
    assert_eq!(
        d.take_sent(),
        [Message::SyncBusy {
            sid: SessionId(2),
            with: Name::sanitize("ALPHA")
        }]
    );
    // The receiver's own clock expires the idle session.
    let at = rx.poll_timeout().unwrap();
    assert_eq!(at, T0 + SESSION_TIMEOUT_MS + 1);
    rx.handle_timeout(at);
    d.pump(&mut rx, at);
    assert!(
        d.events
            .iter()
            .any(|e| matches!(e, RxEvent::Expired { sid } if *sid == SessionId(1)))
    );
    assert_eq!(d.persisted[&SessionId(1)].state, SessionState::Expired);
    rx.handle(at + 1, "local/CHARLIE", request(2, "CHARLIE", &[news()]));
    d.pump(&mut rx, at + 1);
    assert!(matches!(
        d.take_sent()[..],
        [Message::SyncAccept {
            sid: SessionId(2),
            ..
        }]
    ));
}

#[test]
fn a_sender_that_keeps_talking_cannot_hold_the_receiver_for_ever() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver::default();
    rx.handle(T0, "local/ALPHA", request(1, "ALPHA", &[news()]));
    d.pump(&mut rx, T0);
    // Something every half hour, never finishing: never idle for an hour.
    let mut now = T0;
    while now < T0 + MAX_SESSION_MS - SESSION_TIMEOUT_MS / 2 {
        now += SESSION_TIMEOUT_MS / 2;
        rx.handle(
            now,
            "local/ALPHA",
            Message::SyncInitiate {
                sid: SessionId(1),
                announce: announce(&news()),
            },
        );
        d.pump(&mut rx, now);
        assert!(rx.poll_timeout().unwrap() > now);
    }
    d.take_sent();
    let at = rx.poll_timeout().unwrap();
    assert_eq!(at, T0 + MAX_SESSION_MS + 1);
    rx.handle_timeout(at);
    d.pump(&mut rx, at);
    assert_eq!(d.persisted[&SessionId(1)].state, SessionState::Expired);
    rx.handle(at + 1, "local/CHARLIE", request(2, "CHARLIE", &[news()]));
    d.pump(&mut rx, at + 1);
    assert!(matches!(
        d.take_sent()[..],
        [Message::SyncAccept {
            sid: SessionId(2),
            ..
        }]
    ));
}

#[test]
fn expiry_is_checked_at_a_request_too() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver::default();
    rx.handle(T0, "local/ALPHA", request(1, "ALPHA", &[news()]));
    d.pump(&mut rx, T0);
    let later = T0 + SESSION_TIMEOUT_MS + 1;
    rx.handle(later, "local/CHARLIE", request(2, "CHARLIE", &[news()]));
    d.pump(&mut rx, later);
    assert_eq!(d.persisted[&SessionId(1)].state, SessionState::Expired);
    assert!(matches!(d.take_sent()[..], [_, Message::SyncAccept { .. }]));
}

#[test]
fn an_interrupted_session_resumes_with_what_it_holds() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver::default();
    let (n, r) = (news(), roster());
    rx.handle(
        T0,
        "local/ALPHA",
        request(7, "ALPHA", &[n.clone(), r.clone()]),
    );
    d.pump(&mut rx, T0);
    let sid = SessionId(7);
    // News arrives whole; the roster's first chunk only. Then the receiver restarts.
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncInitiate {
            sid,
            announce: announce(&n),
        },
    );
    for c in chunks(sid, &n) {
        rx.handle(T0, "local/ALPHA", c);
    }
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncConfirmRequest {
            sid,
            announce: announce(&n),
        },
    );
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncInitiate {
            sid,
            announce: announce(&r),
        },
    );
    rx.handle(T0, "local/ALPHA", chunks(sid, &r).remove(0));
    d.pump(&mut rx, T0);
    d.take_sent();

    let mut rx = Receiver::new(me(), d.persisted.values().cloned().collect());
    // The same account, from another of its toons (the request names another toon).
    let mut again = request(99, "ALPHA", &[n.clone(), r.clone()]);
    if let Message::SyncRequest { toon, .. } = &mut again {
        *toon = Name::sanitize("Alt-Realm");
    }
    rx.handle(T0 + 60_000, "local/ALPHA", again);
    d.pump(&mut rx, T0 + 60_000);
    assert_eq!(
        d.take_sent(),
        [Message::SyncAccept {
            sid,
            done: [TableName::News].into_iter().collect(),
            partial: [TableName::Roster].into_iter().collect(),
        }]
    );
    rx.handle(
        T0 + 60_001,
        "local/ALPHA",
        Message::SyncInitiate {
            sid,
            announce: announce(&r),
        },
    );
    d.pump(&mut rx, T0 + 60_001);
    assert_eq!(
        d.take_sent(),
        [Message::SyncReady {
            sid,
            table: TableName::Roster,
            need: Ranges(vec![(2, 2)])
        }]
    );
}

#[test]
fn held_data_the_sender_no_longer_has_is_received_again() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver::default();
    let n = news();
    rx.handle(
        T0,
        "local/ALPHA",
        request(7, "ALPHA", &[n.clone(), roster()]),
    );
    d.pump(&mut rx, T0);
    let sid = SessionId(7);
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncInitiate {
            sid,
            announce: announce(&n),
        },
    );
    for c in chunks(sid, &n) {
        rx.handle(T0, "local/ALPHA", c);
    }
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncConfirmRequest {
            sid,
            announce: announce(&n),
        },
    );
    d.pump(&mut rx, T0);
    d.take_sent();
    let changed = Payload::new(TableName::News, vec![b'm'; 700]);
    let mut rx = Receiver::new(me(), d.persisted.values().cloned().collect());
    rx.handle(
        T0 + 1,
        "local/ALPHA",
        request(8, "ALPHA", &[changed, roster()]),
    );
    d.pump(&mut rx, T0 + 1);
    assert_eq!(
        d.take_sent(),
        [Message::SyncAccept {
            sid,
            done: TableSet::EMPTY,
            partial: TableSet::EMPTY,
        }]
    );
    assert!(!d.staged.contains_key(&(sid, TableName::News)));
}

#[test]
fn a_damaged_staged_table_is_received_again() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver::default();
    let n = news();
    rx.handle(
        T0,
        "local/ALPHA",
        request(7, "ALPHA", &[n.clone(), roster()]),
    );
    d.pump(&mut rx, T0);
    let sid = SessionId(7);
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncInitiate {
            sid,
            announce: announce(&n),
        },
    );
    for c in chunks(sid, &n) {
        rx.handle(T0, "local/ALPHA", c);
    }
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncConfirmRequest {
            sid,
            announce: announce(&n),
        },
    );
    d.pump(&mut rx, T0);
    d.take_sent();
    d.damaged.insert(TableName::News);
    let mut rx = Receiver::new(me(), d.persisted.values().cloned().collect());
    rx.handle(T0 + 1, "local/ALPHA", request(8, "ALPHA", &[n, roster()]));
    d.pump(&mut rx, T0 + 1);
    assert!(matches!(
        d.take_sent()[..],
        [Message::SyncAccept { done, .. }] if done.is_empty()
    ));
    assert!(d.events.iter().any(|e| matches!(
        e,
        RxEvent::StagedDiscarded {
            table: TableName::News,
            ..
        }
    )));
}

#[test]
fn commit_waits_for_every_table_and_missing_chunks_are_asked_for() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver::default();
    let n = news();
    rx.handle(
        T0,
        "local/ALPHA",
        request(3, "ALPHA", std::slice::from_ref(&n)),
    );
    d.pump(&mut rx, T0);
    d.take_sent();
    let sid = SessionId(3);
    let mut cs = chunks(sid, &n);
    let lost = cs.remove(1);
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncInitiate {
            sid,
            announce: announce(&n),
        },
    );
    for c in cs {
        rx.handle(T0, "local/ALPHA", c);
    }
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncConfirmRequest {
            sid,
            announce: announce(&n),
        },
    );
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncCommit {
            sid,
            tables: [TableName::News].into_iter().collect(),
        },
    );
    d.pump(&mut rx, T0);
    assert_eq!(
        d.take_sent(),
        [Message::SyncResend {
            sid,
            table: TableName::News,
            missing: Ranges(vec![(2, 2)])
        }]
    );
    assert_eq!(d.commits, 0);
    rx.handle(T0, "local/ALPHA", lost);
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncConfirmRequest {
            sid,
            announce: announce(&n),
        },
    );
    d.pump(&mut rx, T0);
    let kinds: Vec<&str> = d.take_sent().iter().map(|m| m.kind()).collect();
    assert_eq!(kinds, ["SYNC_CONFIRM", "SYNC_COMPLETE"]);
    assert_eq!(d.commits, 1);
}

#[test]
fn a_lost_initiate_is_recovered_by_the_confirmation_request() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver::default();
    let n = news();
    rx.handle(
        T0,
        "local/ALPHA",
        request(3, "ALPHA", std::slice::from_ref(&n)),
    );
    d.pump(&mut rx, T0);
    d.take_sent();
    let sid = SessionId(3);
    for c in chunks(sid, &n) {
        rx.handle(T0, "local/ALPHA", c);
    }
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncConfirmRequest {
            sid,
            announce: announce(&n),
        },
    );
    d.pump(&mut rx, T0);
    assert!(matches!(
        d.take_sent()[..],
        [Message::SyncResend { ref missing, .. }] if missing.count() == u64::from(announce(&n).total)
    ));
}

#[test]
fn hostile_announcements_are_refused_without_cost() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver::default();
    rx.handle(T0, "local/ALPHA", request(3, "ALPHA", &[news()]));
    d.pump(&mut rx, T0);
    d.take_sent();
    let sid = SessionId(3);
    let huge = Announce {
        table: TableName::News,
        total: 1 << 30,
        bytes: 1 << 30,
        crc: 1,
    };
    rx.handle(
        T0,
        "local/ALPHA",
        Message::SyncInitiate {
            sid,
            announce: huge,
        },
    );
    d.pump(&mut rx, T0);
    assert!(matches!(
        d.take_sent()[..],
        [Message::SyncError {
            table: Some(TableName::News),
            ..
        }]
    ));
    assert_eq!(d.persisted[&sid].state, SessionState::Failed);
}

#[test]
fn another_protocol_version_is_refused_with_a_reason() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver::default();
    let mut m = request(3, "ALPHA", &[news()]);
    if let Message::SyncRequest { version, .. } = &mut m {
        *version = 1;
    }
    rx.handle(T0, "local/ALPHA", m);
    d.pump(&mut rx, T0);
    assert!(matches!(
        &d.take_sent()[..],
        [Message::SyncError { reason, .. }] if reason.contains("version 1")
    ));
    assert!(d.persisted.is_empty());
}

#[test]
fn an_account_file_that_cannot_be_read_ends_the_request_cleanly() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver {
        fail_open: Some("GuildHelper.lua:3:1: unexpected end of file".into()),
        ..Driver::default()
    };
    rx.handle(T0, "local/ALPHA", request(3, "ALPHA", &[news()]));
    d.pump(&mut rx, T0);
    assert!(matches!(
        &d.take_sent()[..],
        [Message::SyncError { table: None, reason, .. }] if reason.contains("end of file")
    ));
    assert_eq!(d.persisted[&SessionId(3)].state, SessionState::Failed);
    // A later request starts afresh (the failed session does not keep it busy).
    rx.handle(T0 + 1, "local/CHARLIE", request(4, "CHARLIE", &[news()]));
    d.pump(&mut rx, T0 + 1);
    assert!(matches!(d.take_sent()[..], [Message::SyncAccept { .. }]));
}

#[test]
fn messages_from_a_stranger_or_another_session_are_ignored() {
    let mut rx = Receiver::new(me(), Vec::new());
    let mut d = Driver::default();
    rx.handle(T0, "local/ALPHA", request(3, "ALPHA", &[news()]));
    d.pump(&mut rx, T0);
    d.take_sent();
    let sid = SessionId(3);
    for (from, sid) in [("local/EVE", sid), ("local/ALPHA", SessionId(4))] {
        rx.handle(
            T0,
            from,
            Message::SyncError {
                sid,
                table: None,
                reason: "stop".into(),
            },
        );
        rx.handle(
            T0,
            from,
            Message::SyncCommit {
                sid,
                tables: TableSet::EMPTY,
            },
        );
    }
    d.pump(&mut rx, T0);
    assert!(d.take_sent().is_empty());
    assert_eq!(d.persisted[&sid].state, SessionState::Active);
}

/// Crafted bytes as another PC could write them, each with a correct checksum, after a real
/// SYNC_REQUEST: sizes no channel can carry are refused (by the decoder or with a SYNC_ERROR),
/// and nothing is journaled, staged or committed for them.
#[test]
fn crafted_messages_announcing_impossible_sizes_cost_nothing() {
    let sign = |body: &str| format!("{body}|{:08x}", crc32fast::hash(body.as_bytes()));
    for body in [
        // 2^30 chunks in 63 bytes, announced, then asked to be confirmed.
        "SYNC_INITIATE|00000003|news|1073741824|1073741824|a06e253d",
        "SYNC_CONFIRM_REQUEST|00000003|news|1073741824|1073741824|a06e253d",
        // More bytes than the chunks could carry.
        "SYNC_INITIATE|00000003|news|2|100000|a06e253d",
        "SYNC_CONFIRM_REQUEST|00000003|news|2|100000|a06e253d",
        // Chunks beyond their total, and past 2^32.
        "SYNC_DATA|00000003|Heretanky-Velen|news|9|2|x",
        "SYNC_DATA|00000003|Heretanky-Velen|news|4294967296|4294967297|x",
    ] {
        let bytes = sign(body);
        let Ok(msg) = Message::decode(bytes.as_bytes()) else {
            continue;
        };
        let mut rx = Receiver::new(me(), Vec::new());
        let mut d = Driver::default();
        rx.handle(T0, "local/ALPHA", request(3, "ALPHA", &[news()]));
        d.pump(&mut rx, T0);
        d.take_sent();
        rx.handle(T0, "local/ALPHA", msg);
        d.pump(&mut rx, T0);
        let sent = d.take_sent();
        assert!(
            sent.iter()
                .all(|m| matches!(m, Message::SyncError { .. } | Message::SyncResend { .. })),
            "{body}: {sent:?}"
        );
        if let Some(Message::SyncResend { missing, .. }) = sent.first() {
            assert!(
                missing.count() <= 2,
                "{body}: asked for {} chunks",
                missing.count()
            );
        }
        assert!(d.journal.is_empty() && d.staged.is_empty(), "{body}");
        assert_eq!(d.commits, 0, "{body}");
    }
}
