//! The two peers in the deterministic simulation harness: seeded fault schedules, and crashes of
//! either peer at every durable write, with no files and no sleeps.

use std::time::Instant;

use svsync::lua::LuaValue;
use svsync::merge::TargetFile;
use svsync::model::Target;
use svsync::model::json::from_json_bytes;
use svsync::peer::harness::{Harness, MemAccount, Stop};
use svsync::peer::source::source_of;
use svsync::protocol::sender::{Outcome, Source};
use svsync::protocol::session::{Role, TableStatus};
use svsync::transport::Transport;
use svsync::transport::sim::{Faults, Rng};

use crate::support::testdata;

const T0: u64 = 1_800_000_000_000;

fn file(name: &str) -> Vec<u8> {
    std::fs::read(testdata().join(format!("WTF/Account/{name}/SavedVariables/GuildHelper.lua")))
        .unwrap()
}

fn source(name: &str) -> Source {
    source_of(std::path::Path::new(name), file(name), name).unwrap()
}

/// The receiver's file after the merge, computed by the merge engine alone (no pipeline).
fn expected(source: &Source, receiver: &[u8], target: Target) -> Vec<u8> {
    let mut t = TargetFile::open(receiver.to_vec(), target).unwrap();
    for p in &source.payloads {
        let Ok(LuaValue::Table(table)) =
            from_json_bytes(&p.packed.to_vec().expect("a payload unpacks"))
        else {
            panic!("payload of {} is not a table", p.table);
        };
        t.merge(p.table, table);
    }
    t.finish(source.metadata)
        .unwrap()
        .merged
        .unwrap_or_else(|| receiver.to_vec())
}

struct Case {
    source: Source,
    receiver: Vec<u8>,
    target: Target,
    want: Vec<u8>,
}

fn cases() -> Vec<Case> {
    [
        ("CHARLIE", "BRAVO", Target::SharedDataRemote),
        ("ALPHA", "BRAVO", Target::SharedDataRemote),
        ("ALPHA", "CHARLIE", Target::SharedData),
        ("BRAVO", "ALPHA", Target::SharedDataRemote),
    ]
    .into_iter()
    .map(|(from, to, target)| {
        let source = source(from);
        let receiver = file(to);
        let want = expected(&source, &receiver, target);
        assert_ne!(want, receiver, "{from} -> {to} changes nothing");
        Case {
            source,
            receiver,
            target,
            want,
        }
    })
    .collect()
}

/// Runs to the end: the sender finishes (or nothing more can happen), and what it sent last
/// reaches the receiver.
fn finish(h: &mut Harness) -> Stop {
    let stop = h.run(Some(1_000_000));
    h.drain();
    stop
}

/// A sync of `case` over a perfect simulated link, and the receiver's account.
fn perfect(case: &Case) -> (Harness, MemAccount) {
    let account = MemAccount::new(case.receiver.clone());
    let h = Harness::new(
        case.source.clone(),
        account.clone(),
        case.target,
        Faults::default(),
        T0,
        7,
    );
    (h, account)
}

#[test]
fn a_perfect_link_gives_the_merge_engine_result_in_two_round_trips() {
    for case in cases() {
        let (mut h, account) = perfect(&case);
        assert_eq!(finish(&mut h), Stop::Finished);
        assert_eq!(h.outcome(), Some(&Outcome::Complete { written: true }));
        assert_eq!(account.bytes(), case.want);
        assert_eq!(account.writes(), 1);
        // REQUEST, ACCEPT, everything, CONFIRMs and COMPLETE: two round trips of 50 ms.
        assert_eq!(h.link.now() - T0, 4 * svsync::transport::sim::LATENCY_MS);
        // Both peers recorded the session, each its own record.
        let sent = h.sender_store.records();
        let received = h.receiver_store.records();
        assert!(sent.iter().all(|r| r.role == Role::Send));
        assert!(received.iter().all(|r| r.role == Role::Receive));
        assert_eq!(sent.len(), 1);
        assert_eq!(received.len(), 1);
        assert_eq!(sent[0].id, received[0].id);
        assert!(
            sent[0]
                .tables
                .values()
                .all(|t| t.status == TableStatus::Complete && t.counts.is_some())
        );
    }
}

/// In one process the sender sends a large flight in pieces, each once the receiver has taken
/// the one before: the link never holds more than a piece, and the result is the same.
#[test]
fn a_paced_local_link_holds_one_piece_and_gives_the_same_result() {
    for case in cases() {
        let whole = {
            let (mut h, _) = perfect(&case);
            assert_eq!(finish(&mut h), Stop::Finished);
            h.link.max_backlog
        };
        let account = MemAccount::new(case.receiver.clone());
        let mut h = Harness::local(case.source.clone(), account.clone(), case.target, T0, 4);
        assert_eq!(finish(&mut h), Stop::Finished);
        assert_eq!(h.outcome(), Some(&Outcome::Complete { written: true }));
        assert_eq!(account.bytes(), case.want);
        assert_eq!(account.writes(), 1);
        // A piece, and an answer on its way back at most.
        assert!(h.link.max_backlog <= 5, "{}", h.link.max_backlog);
        assert!(whole > 15, "a whole flight holds {whole} messages");
    }
}

/// At least 10,000 seeded fault schedules: each ends in exactly the fault-free result, or in a
/// clean failure that writes nothing.
#[test]
fn ten_thousand_seeded_fault_schedules_end_right_or_write_nothing() {
    let cases = cases();
    let mut rng = Rng::new(2026);
    let (mut complete, mut failed) = (0u32, 0u32);
    let start = Instant::now();
    for seed in 0..10_000u64 {
        let case = &cases[(seed % cases.len() as u64) as usize];
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
        };
        let account = MemAccount::new(case.receiver.clone());
        let mut h = Harness::new(
            case.source.clone(),
            account.clone(),
            case.target,
            faults,
            T0,
            seed as u32,
        );
        let stop = finish(&mut h);
        assert!(
            matches!(stop, Stop::Finished | Stop::Idle),
            "seed {seed}: {stop:?}"
        );
        let done = matches!(h.outcome(), Some(Outcome::Complete { .. })) || h.committed();
        if done {
            complete += 1;
            assert_eq!(account.bytes(), case.want, "seed {seed}: {faults:?}");
            assert_eq!(account.writes(), 1, "seed {seed}");
        } else {
            failed += 1;
            assert_eq!(
                account.bytes(),
                case.receiver,
                "seed {seed}: a failed sync wrote"
            );
            assert_eq!(account.writes(), 0, "seed {seed}");
        }
    }
    println!(
        "{complete} complete, {failed} failed cleanly, in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(complete >= 9_000, "{complete} complete, {failed} failed");
}

/// The receiver dies at each of its durable writes in turn and starts again: the file is old
/// or new, never anything else, and the sync completes (resuming, or after a rerun) with the
/// fault-free result; tables it had staged are not sent again.
#[test]
fn the_receiver_crashing_at_every_durable_write_then_restarting_ends_right() {
    for case in cases() {
        let probe = MemAccount::new(case.receiver.clone());
        let mut h = Harness::new(
            case.source.clone(),
            probe,
            case.target,
            Faults::default(),
            T0,
            1,
        );
        finish(&mut h);
        let writes = h.receiver_store.writes();
        assert!(writes > 5);
        for n in 1..=writes {
            let account = MemAccount::new(case.receiver.clone());
            let mut h = Harness::new(
                case.source.clone(),
                account.clone(),
                case.target,
                Faults::default(),
                T0,
                1,
            );
            h.receiver_store.crash_at(Some(n));
            let stop = h.run(Some(1_000_000));
            assert_eq!(stop, Stop::ReceiverDied, "crash at write {n}");
            let on_disk = account.bytes();
            assert!(
                on_disk == case.receiver || on_disk == case.want,
                "write {n}: the file is neither old nor new"
            );
            let staged: Vec<_> = h
                .receiver_store
                .records()
                .iter()
                .flat_map(|r| {
                    r.tables
                        .iter()
                        .filter(|(_, p)| p.status == TableStatus::Complete)
                        .map(|(t, _)| *t)
                        .collect::<Vec<_>>()
                })
                .collect();
            h.restart_receiver();
            let chunks_before = h.sender().stats().chunks;
            let mut stop = finish(&mut h);
            if !matches!(h.outcome(), Some(Outcome::Complete { .. })) && !h.committed() {
                // The sender gave up meanwhile: the player runs the sync again.
                h.rerun_sender();
                stop = finish(&mut h);
            }
            assert_eq!(stop, Stop::Finished, "write {n}");
            assert_eq!(account.bytes(), case.want, "write {n}");
            assert!(account.writes() <= 1, "write {n}: written twice");
            // Nothing staged before the crash travelled again.
            let resent: u64 = h.sender().stats().chunks - chunks_before;
            let staged_chunks: u64 = h
                .sender()
                .peer()
                .tables()
                .filter(|(a, _)| staged.contains(&a.table))
                .map(|(a, _)| u64::from(a.total))
                .sum();
            let all: u64 = h
                .sender()
                .peer()
                .tables()
                .map(|(a, _)| u64::from(a.total))
                .sum();
            assert!(
                resent <= all - staged_chunks.min(all) || staged.is_empty(),
                "write {n}: {resent} chunks sent again, {staged_chunks} of them staged"
            );
        }
    }
}

/// The sender dies at each of its durable writes and runs again: the receiver resumes the same
/// session, and the result is the fault-free one.
#[test]
fn the_sender_crashing_at_every_durable_write_then_rerunning_ends_right() {
    for case in cases() {
        let probe = MemAccount::new(case.receiver.clone());
        let mut h = Harness::new(
            case.source.clone(),
            probe,
            case.target,
            Faults::default(),
            T0,
            1,
        );
        finish(&mut h);
        let writes = h.sender_store.writes();
        assert!(writes > 3);
        for n in 1..=writes {
            let account = MemAccount::new(case.receiver.clone());
            let mut h = Harness::new(
                case.source.clone(),
                account.clone(),
                case.target,
                Faults::default(),
                T0,
                1,
            );
            h.sender_store.crash_at(Some(n));
            assert_eq!(
                h.run(Some(1_000_000)),
                Stop::SenderDied,
                "crash at write {n}"
            );
            h.rerun_sender();
            assert_eq!(finish(&mut h), Stop::Finished, "write {n}");
            assert!(
                matches!(h.outcome(), Some(Outcome::Complete { .. })),
                "write {n}: {:?}",
                h.outcome()
            );
            assert_eq!(account.bytes(), case.want, "write {n}");
            assert!(account.writes() <= 1, "write {n}");
        }
    }
}

/// A crash between any two steps of the loop (the process killed while nothing is being
/// written), then a restart of that peer.
#[test]
fn either_peer_restarting_after_any_step_ends_right() {
    let case = &cases()[1];
    let probe = MemAccount::new(case.receiver.clone());
    let mut h = Harness::new(
        case.source.clone(),
        probe,
        case.target,
        Faults::default(),
        T0,
        1,
    );
    let mut steps = 0;
    while h.run(Some(1)) == Stop::Steps {
        steps += 1;
    }
    assert!(steps >= 3);
    for k in 1..=steps {
        for receiver in [true, false] {
            let account = MemAccount::new(case.receiver.clone());
            let mut h = Harness::new(
                case.source.clone(),
                account.clone(),
                case.target,
                Faults::default(),
                T0,
                1,
            );
            h.run(Some(k));
            if receiver {
                h.restart_receiver();
            } else {
                h.rerun_sender();
            }
            let mut stop = finish(&mut h);
            if !matches!(h.outcome(), Some(Outcome::Complete { .. })) && !h.committed() {
                h.rerun_sender();
                stop = finish(&mut h);
            }
            assert_eq!(stop, Stop::Finished, "step {k}, receiver {receiver}");
            assert_eq!(account.bytes(), case.want, "step {k}, receiver {receiver}");
            assert!(account.writes() <= 1);
        }
    }
}

/// The game saves the receiver's file during the sync: nothing is overwritten; a rerun merges
/// into the game's new file with the tables already staged.
#[test]
fn a_receiver_saved_by_the_game_meanwhile_is_not_overwritten() {
    let case = &cases()[1];
    let account = MemAccount::new(case.receiver.clone());
    let mut h = Harness::new(
        case.source.clone(),
        account.clone(),
        case.target,
        Faults::default(),
        T0,
        1,
    );
    // Up to the receiver's reading of its file, then the game saves.
    h.run(Some(2));
    let mut saved = case.receiver.clone();
    saved.extend_from_slice(b"\nOtherAddonDB = { [\"saved\"] = true }\n");
    account.game_save(saved.clone());
    finish(&mut h);
    assert!(
        matches!(h.outcome(), Some(Outcome::Failed(_))),
        "{:?}",
        h.outcome()
    );
    assert_eq!(account.bytes(), saved);
    assert_eq!(account.writes(), 0);
    h.rerun_sender();
    finish(&mut h);
    assert!(matches!(h.outcome(), Some(Outcome::Complete { .. })));
    assert!(h.sender().resumed());
    let now = account.bytes();
    assert!(now.ends_with(b"OtherAddonDB = { [\"saved\"] = true }\n"));
    assert_eq!(expected(&case.source, &saved, case.target), now);
    // Every table was staged before the game saved: nothing travelled again.
    assert_eq!(h.sender().stats().chunks, 0);
}
