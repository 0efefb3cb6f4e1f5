//! The sender -> receiver pipeline over perfect and faulty channels, with crashes, resumes,
//! timeouts and busy receivers, on temp copies of the sample accounts.

use std::path::{Path, PathBuf};

use svsync::lua::parse_with;
use svsync::merge::{merge_shared, splice_merge};
use svsync::model::{Target, parse_options, shared_table};
use svsync::sync::run::{Side, SyncError, SyncJob, SyncReport, WriteMode, run};
use svsync::sync::session::{SessionState, SessionStore, TIMEOUT_SECS, TableStatus};
use svsync::sync::transport::{Faults, Rng};
use svsync::sync::wire::{MAX_MESSAGE, Message};

use crate::support::testdata;

const T0: u64 = 1_800_000_000;

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ALPHA", "BRAVO", "CHARLIE"] {
            let sv = dir
                .path()
                .join(format!("WTF/Account/{name}/SavedVariables"));
            std::fs::create_dir_all(&sv).unwrap();
            std::fs::copy(
                testdata().join(format!("WTF/Account/{name}/SavedVariables/GuildHelper.lua")),
                sv.join("GuildHelper.lua"),
            )
            .unwrap();
        }
        Sandbox { dir }
    }

    fn side(&self, name: &str) -> Side {
        Side {
            file: self.file(name),
            account: name.to_string(),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("WTF/Account/{name}/SavedVariables/GuildHelper.lua"))
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

/// An in-place, fault-free run; call sites change what they test with struct update syntax.
fn job<'a>(
    sb: &Sandbox,
    from: &str,
    to: &str,
    target: Target,
    store: &'a mut SessionStore,
    now: u64,
) -> SyncJob<'a> {
    SyncJob {
        from: sb.side(from),
        to: sb.side(to),
        target,
        mode: WriteMode::InPlace,
        faults: Faults::default(),
        store,
        log_dir: Some(sb.state().join("logs")),
        wire_log: None,
        now,
        progress: None,
    }
}

/// The merged receiver file computed directly by the merge engine (no pipeline).
fn expected_bytes(from: &Path, to: &Path, target: Target) -> Vec<u8> {
    let src = std::fs::read(from).unwrap();
    let doc = parse_with(&src, &parse_options()).unwrap();
    let shared = shared_table(&doc, "sharedData").unwrap().unwrap();
    let dst = std::fs::read(to).unwrap();
    let doc = parse_with(&dst, &parse_options()).unwrap();
    let current = shared_table(&doc, target.key()).unwrap();
    let merge = merge_shared(&shared, current.as_ref());
    splice_merge(&doc, target, current.as_ref(), &merge).unwrap()
}

fn wire_lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<String>(l).unwrap().into_bytes())
        .collect()
}

const PAIRS: [(&str, &str, Target); 3] = [
    ("CHARLIE", "BRAVO", Target::SharedDataRemote),
    ("ALPHA", "BRAVO", Target::SharedDataRemote),
    ("ALPHA", "CHARLIE", Target::SharedData),
];

#[test]
fn a_perfect_channel_gives_the_merge_engine_result() {
    for (from, to, target) in PAIRS {
        let sb = Sandbox::new();
        let want = expected_bytes(&sb.file(from), &sb.file(to), target);
        let mut store = SessionStore::open(&sb.state()).unwrap();
        let wire = sb.dir.path().join("wire.log");
        let report = run(SyncJob {
            wire_log: Some(wire.clone()),
            ..job(&sb, from, to, target, &mut store, T0)
        })
        .unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(std::fs::read(sb.file(to)).unwrap(), want, "{from} -> {to}");
        assert!(report.backup.as_ref().unwrap().exists());
        assert!(sb.state().join("logs/sender.log").exists());
        assert!(sb.state().join("logs/receiver.log").exists());
        // Tables went in sync order, one at a time.
        let order: Vec<String> = wire_lines(&wire)
            .iter()
            .filter_map(|m| match Message::decode(m).unwrap() {
                Message::SyncInitiate { table, .. } => Some(table.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(order, ["setup", "news", "guildInfo", "calendar", "roster"]);
        let session = store
            .get(svsync::sync::wire::SessionId::parse(&report.session).unwrap())
            .unwrap();
        assert_eq!(session.state, SessionState::Complete);
    }
}

/// At least 1,000 seeded fault schedules: each ends in exactly the fault-free result, or in a
/// clean failure that writes nothing. No message is ever over 255 bytes or holds a NUL.
#[test]
fn seeded_fault_schedules_end_in_the_fault_free_result_or_nothing() {
    let sb = Sandbox::new();
    let mut expected = Vec::new();
    for (from, to, target) in PAIRS {
        expected.push(expected_bytes(&sb.file(from), &sb.file(to), target));
    }
    let mut rng = Rng::new(2024);
    let (mut complete, mut failed) = (0, 0);
    for seed in 0..1_050u64 {
        let (from, to, target) = PAIRS[(seed % 3) as usize];
        let heavy = seed % 10 == 9;
        let rate = |rng: &mut Rng, max: f64| rng.unit() * max;
        let faults = Faults {
            drop: rate(&mut rng, if heavy { 0.6 } else { 0.2 }),
            duplicate: rate(&mut rng, 0.2),
            reorder: rate(&mut rng, 0.3),
            delay: rate(&mut rng, 0.1),
            corrupt: rate(&mut rng, if heavy { 0.5 } else { 0.1 }),
            truncate: rate(&mut rng, 0.05),
            seed,
            crash_after: None,
        };
        let out = sb.dir.path().join(format!("out-{seed}.lua"));
        let wire = (seed % 25 == 0).then(|| sb.dir.path().join(format!("wire-{seed}.log")));
        let mut store = SessionStore::in_memory();
        let report = run(SyncJob {
            mode: WriteMode::Output(out.clone()),
            faults,
            wire_log: wire.clone(),
            ..job(&sb, from, to, target, &mut store, T0)
        })
        .unwrap();
        if report.ok() {
            complete += 1;
            assert_eq!(
                std::fs::read(&out).unwrap(),
                expected[(seed % 3) as usize],
                "seed {seed}: {faults:?}"
            );
        } else {
            failed += 1;
            assert!(
                !out.exists(),
                "seed {seed}: a failed sync wrote {}",
                out.display()
            );
            assert!(report.written.is_none());
        }
        if let Some(w) = wire {
            for m in wire_lines(&w) {
                assert!(m.len() <= MAX_MESSAGE && !m.contains(&0), "seed {seed}");
            }
        }
    }
    assert!(complete >= 900, "{complete} complete, {failed} failed");
    // The heavy schedules (60% drop, 50% corruption) do make some runs give up cleanly.
    println!("{complete} complete, {failed} failed cleanly");
}

/// A crash after any number of messages leaves the receiver's file as it was; a rerun
/// finishes with the fault-free result and does not send complete tables again.
#[test]
fn a_crash_between_any_two_messages_then_a_rerun_gives_the_fault_free_result() {
    let (from, to, target) = ("ALPHA", "BRAVO", Target::SharedDataRemote);
    let probe = Sandbox::new();
    let want = expected_bytes(&probe.file(from), &probe.file(to), target);
    let original = std::fs::read(probe.file(to)).unwrap();
    let mut store = SessionStore::in_memory();
    let clean = run(SyncJob {
        mode: WriteMode::DryRun,
        ..job(&probe, from, to, target, &mut store, T0)
    })
    .unwrap();
    let total = clean.messages_sent + clean.messages_received;
    let total_data: u64 = clean.tables.iter().map(|t| u64::from(t.chunks)).sum();
    assert!(total > 40);

    for n in 1..=total {
        let sb = Sandbox::new();
        let mut store = SessionStore::open(&sb.state()).unwrap();
        let faults = Faults {
            crash_after: Some(n),
            ..Faults::default()
        };
        let r = run(SyncJob {
            faults,
            ..job(&sb, from, to, target, &mut store, T0)
        });
        assert!(
            matches!(r, Err(SyncError::Crashed(_))),
            "crash-after={n}: {r:?}"
        );
        drop(store);
        let on_disk = std::fs::read(sb.file(to)).unwrap();
        assert!(
            on_disk == original || on_disk == want,
            "crash-after={n}: the file is neither old nor new"
        );

        // What the interrupted session holds, as a new process sees it.
        let mut store = SessionStore::open(&sb.state()).unwrap();
        let live = store
            .sessions
            .iter()
            .find(|s| s.state == SessionState::Active)
            .cloned();
        let wire = sb.dir.path().join("rerun.log");
        let report = run(SyncJob {
            wire_log: Some(wire.clone()),
            ..job(&sb, from, to, target, &mut store, T0 + 60)
        })
        .unwrap();
        assert!(report.ok(), "crash-after={n}: {report:?}");
        assert_eq!(std::fs::read(sb.file(to)).unwrap(), want, "crash-after={n}");

        let data: Vec<Message> = wire_lines(&wire)
            .iter()
            .filter_map(|m| Message::decode(m).ok())
            .filter(|m| matches!(m, Message::SyncData { .. }))
            .collect();
        if let Some(live) = live {
            assert!(report.resumed, "crash-after={n}: the rerun did not resume");
            assert_eq!(report.session, live.id);
            for (table, p) in &live.tables {
                let sent = data
                    .iter()
                    .filter(|m| matches!(m, Message::SyncData { table: t, .. } if t == table))
                    .count() as u32;
                match p.status {
                    TableStatus::Complete => assert_eq!(
                        sent, 0,
                        "crash-after={n}: {table} was complete but sent again"
                    ),
                    _ => assert!(
                        sent <= p.chunks - p.received.min(p.chunks),
                        "crash-after={n}: {table}: {sent} sent, {} of {} held",
                        p.received,
                        p.chunks
                    ),
                }
            }
            assert!(data.len() as u64 <= total_data);
        }
    }
}

#[test]
fn an_idle_session_expires_after_an_hour() {
    let sb = Sandbox::new();
    let (from, to, target) = ("ALPHA", "BRAVO", Target::SharedDataRemote);
    let mut store = SessionStore::open(&sb.state()).unwrap();
    let faults = Faults {
        crash_after: Some(30),
        ..Faults::default()
    };
    assert!(
        run(SyncJob {
            faults,
            ..job(&sb, from, to, target, &mut store, T0)
        })
        .is_err()
    );
    let mut store = SessionStore::open(&sb.state()).unwrap();
    let old = store.sessions[0].id.clone();
    let report = run(job(
        &sb,
        from,
        to,
        target,
        &mut store,
        T0 + TIMEOUT_SECS + 1,
    ))
    .unwrap();
    assert!(report.ok());
    assert!(!report.resumed);
    assert_ne!(report.session, old);
    let old = store.sessions.iter().find(|s| s.id == old).unwrap();
    assert_eq!(old.state, SessionState::Expired);
}

fn busy_report(r: &SyncReport) -> bool {
    r.outcome == "busy"
        && r.written.is_none()
        && r.reason.as_deref().is_some_and(|s| s.contains("busy"))
}

#[test]
fn a_receiver_in_a_session_with_another_sender_is_busy() {
    let sb = Sandbox::new();
    let mut store = SessionStore::open(&sb.state()).unwrap();
    let faults = Faults {
        crash_after: Some(25),
        ..Faults::default()
    };
    // ALPHA's session into BRAVO is interrupted and still live...
    assert!(
        run(SyncJob {
            faults,
            ..job(
                &sb,
                "ALPHA",
                "BRAVO",
                Target::SharedDataRemote,
                &mut store,
                T0
            )
        })
        .is_err()
    );
    let before = std::fs::read(sb.file("BRAVO")).unwrap();
    let mut store = SessionStore::open(&sb.state()).unwrap();
    // ...so CHARLIE is told the receiver is busy, and nothing is written.
    let r = run(job(
        &sb,
        "CHARLIE",
        "BRAVO",
        Target::SharedDataRemote,
        &mut store,
        T0 + 10,
    ))
    .unwrap();
    assert!(busy_report(&r), "{r:?}");
    assert_eq!(std::fs::read(sb.file("BRAVO")).unwrap(), before);
    // Another receiver is independent.
    let r = run(job(
        &sb,
        "CHARLIE",
        "ALPHA",
        Target::SharedDataRemote,
        &mut store,
        T0 + 10,
    ))
    .unwrap();
    assert!(r.ok());
    // ALPHA resumes and completes; then CHARLIE gets through.
    let r = run(job(
        &sb,
        "ALPHA",
        "BRAVO",
        Target::SharedDataRemote,
        &mut store,
        T0 + 20,
    ))
    .unwrap();
    assert!(r.ok() && r.resumed);
    let r = run(job(
        &sb,
        "CHARLIE",
        "BRAVO",
        Target::SharedDataRemote,
        &mut store,
        T0 + 30,
    ))
    .unwrap();
    assert!(r.ok());
}

#[test]
fn two_senders_at_once_one_waits_its_turn() {
    let sb = Sandbox::new();
    let store = SessionStore::open(&sb.state()).unwrap();
    // A sync in progress holds the receiver's lock (as a second process would find it).
    let held = store
        .lock_receiver(&sb.file("BRAVO"), "ALPHA")
        .unwrap()
        .unwrap();
    let mut other = SessionStore::open(&sb.state()).unwrap();
    let r = run(job(
        &sb,
        "CHARLIE",
        "BRAVO",
        Target::SharedDataRemote,
        &mut other,
        T0,
    ))
    .unwrap();
    assert!(busy_report(&r), "{r:?}");
    assert!(r.reason.unwrap().contains("ALPHA"));
    drop(held);
    let r = run(job(
        &sb,
        "CHARLIE",
        "BRAVO",
        Target::SharedDataRemote,
        &mut other,
        T0,
    ))
    .unwrap();
    assert!(r.ok());
}

#[test]
fn an_in_progress_table_resumes_only_with_the_same_payload() {
    let sb = Sandbox::new();
    let (from, to, target) = ("ALPHA", "BRAVO", Target::SharedDataRemote);
    let mut store = SessionStore::open(&sb.state()).unwrap();
    // Stop in the middle of the roster's chunks.
    let faults = Faults {
        crash_after: Some(44),
        ..Faults::default()
    };
    assert!(
        run(SyncJob {
            faults,
            ..job(&sb, from, to, target, &mut store, T0)
        })
        .is_err()
    );
    let store2 = SessionStore::open(&sb.state()).unwrap();
    let roster = store2.sessions[0]
        .tables
        .get(&svsync::model::tables::TableName::Roster)
        .cloned()
        .unwrap();
    assert_eq!(roster.status, TableStatus::InProgress);
    let sid = store2.sessions[0].sid().unwrap();
    let held = store2.journaled_count(sid, svsync::model::tables::TableName::Roster);
    assert!(
        held > 0 && held < roster.chunks,
        "{held} of {}",
        roster.chunks
    );
    // The sender's roster changes: the in-progress table restarts from the beginning.
    let path = sb.file(from);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("Raid Leader", "Guild Master");
    std::fs::write(&path, text).unwrap();
    let mut store = SessionStore::open(&sb.state()).unwrap();
    let wire = sb.dir.path().join("wire.log");
    let r = run(SyncJob {
        wire_log: Some(wire.clone()),
        ..job(&sb, from, to, target, &mut store, T0 + 5)
    })
    .unwrap();
    assert!(r.ok() && r.resumed);
    let roster_chunks = wire_lines(&wire)
        .iter()
        .filter_map(|m| Message::decode(m).ok())
        .filter(|m| {
            matches!(
                m,
                Message::SyncData {
                    table: svsync::model::tables::TableName::Roster,
                    ..
                }
            )
        })
        .count() as u32;
    assert_eq!(roster_chunks, r.tables.last().unwrap().chunks);
}

/// The game saves the receiver's file while the sync runs: nothing is overwritten.
#[test]
fn a_receiver_changed_during_the_sync_is_not_overwritten() {
    let sb = Sandbox::new();
    let mut store = SessionStore::open(&sb.state()).unwrap();
    let path = sb.file("BRAVO");
    let mut changed = false;
    let mut game_saves = |done: u64, _total: u64| {
        if done == 10 && !changed {
            let mut text = std::fs::read(&path).unwrap();
            text.extend_from_slice(b"\nOtherAddonDB = { [\"saved\"] = true }\n");
            std::fs::write(&path, text).unwrap();
            changed = true;
        }
    };
    let saved_by_game = {
        let r = run(SyncJob {
            progress: Some(&mut game_saves),
            ..job(
                &sb,
                "ALPHA",
                "BRAVO",
                Target::SharedDataRemote,
                &mut store,
                T0,
            )
        })
        .unwrap();
        assert_eq!(r.outcome, "failed", "{r:?}");
        assert!(
            r.reason.as_deref().unwrap().contains("changed on disk"),
            "{r:?}"
        );
        assert!(r.written.is_none());
        std::fs::read(&path).unwrap()
    };
    assert!(saved_by_game.ends_with(b"OtherAddonDB = { [\"saved\"] = true }\n"));
    assert!(svsync::fsio::write::backups(&path).is_empty());
    // Run again: it resumes with the tables it holds and merges into the game's new file.
    let r = run(job(
        &sb,
        "ALPHA",
        "BRAVO",
        Target::SharedDataRemote,
        &mut store,
        T0 + 5,
    ))
    .unwrap();
    assert!(r.ok() && r.resumed, "{r:?}");
    let now = std::fs::read(&path).unwrap();
    assert!(now.ends_with(b"OtherAddonDB = { [\"saved\"] = true }\n"));
    assert!(String::from_utf8_lossy(&now).contains("202501051930127731"));
}
