use super::*;
use crate::protocol::wire::{Message, SessionId};
use crate::transport::Clock;

fn config(state: &Path, name: &str, key: &GroupKey) -> MailboxConfig {
    MailboxConfig {
        key: key.clone(),
        name: name.into(),
        state: StateStore::Dir(state.join(name)),
        timing: Timing::default(),
        clock: Clock::System,
    }
}

fn pair() -> (tempfile::TempDir, Mailbox, Mailbox, GroupKey) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mailbox");
    let key = GroupKey::new([3u8; 32]);
    init(&dir, &key).unwrap();
    let mut a = Mailbox::open(&dir, config(tmp.path(), "pc-one", &key)).unwrap();
    let mut b = Mailbox::open(&dir, config(tmp.path(), "pc-two", &key)).unwrap();
    a.add_local("MAIN", "local:/a/GuildHelper.lua");
    b.add_local("ALT", "local:/b/GuildHelper.lua");
    (tmp, a, b, key)
}

fn msg(n: u32) -> Vec<u8> {
    Message::SyncComplete {
        sid: SessionId(n),
        written: true,
    }
    .encode()
}

#[test]
fn a_flight_reaches_the_other_peer_once_with_both_addresses() {
    let (_tmp, mut a, mut b, _) = pair();
    let to = remote_addr(b.id(), "ALT");
    a.send("local:/a/GuildHelper.lua", &to, vec![msg(1), msg(2)])
        .unwrap();
    a.flush().unwrap();
    assert_eq!(a.written, 1);
    let got = b.recv().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(&*got[0].from, remote_addr(a.id(), "MAIN"));
    assert_eq!(&*got[0].to, "local:/b/GuildHelper.lua");
    assert_eq!(got[1].bytes, msg(2));
    // Read once: a second look finds nothing new.
    assert!(b.recv().unwrap().is_empty());
    assert_eq!(b.peers()[a.id()].name, "pc-one");
}

#[test]
fn presence_names_the_accounts_and_acks_let_the_writer_clean_up() {
    let (_tmp, mut a, mut b, _) = pair();
    a.announce(&[("MAIN".into(), "Heretanky-Velen".into())]);
    let to = remote_addr(b.id(), "ALT");
    a.send("local:/a/GuildHelper.lua", &to, vec![msg(1)])
        .unwrap();
    a.flush().unwrap();
    assert_eq!(a.written, 2);
    b.recv().unwrap();
    assert_eq!(
        b.peers()[a.id()].accounts.get("MAIN").map(String::as_str),
        Some("Heretanky-Velen")
    );
    // B's next flight carries its acknowledgement; A deletes what B has read.
    b.send(
        "local:/b/GuildHelper.lua",
        &remote_addr(a.id(), "MAIN"),
        vec![msg(3)],
    )
    .unwrap();
    b.flush().unwrap();
    a.recv().unwrap();
    let id = a.id().to_string();
    assert_eq!(list_flights(a.folder(), &id).len(), 2);
    assert_eq!(
        a.clean().unwrap(),
        1,
        "the addressed flight, not the heartbeat"
    );
    assert_eq!(list_flights(a.folder(), &id).len(), 1);
}

#[test]
fn a_restarted_peer_neither_rereads_nor_reuses_sequence_numbers() {
    let (tmp, mut a, mut b, key) = pair();
    let to = remote_addr(b.id(), "ALT");
    a.send("local:/a/GuildHelper.lua", &to, vec![msg(1)])
        .unwrap();
    a.flush().unwrap();
    assert_eq!(b.recv().unwrap().len(), 1);
    let dir = tmp.path().join("mailbox");
    let mut b2 = Mailbox::open(&dir, config(tmp.path(), "pc-two", &key)).unwrap();
    b2.add_local("ALT", "local:/b/GuildHelper.lua");
    assert_eq!(b2.id(), b.id());
    assert!(b2.recv().unwrap().is_empty());
    // A loses its state: its next file still gets a new number.
    std::fs::remove_dir_all(tmp.path().join("pc-one")).unwrap();
    let mut a2 = Mailbox::open(&dir, config(tmp.path(), "pc-one", &key)).unwrap();
    a2.add_local("MAIN", "local:/a/GuildHelper.lua");
    assert_ne!(a2.id(), a.id(), "a new state is a new peer");
    let _ = &mut a2;
}

#[test]
fn files_that_are_not_the_groups_flights_are_ignored_and_told_once() {
    let (tmp, mut a, mut b, _) = pair();
    let dir = tmp.path().join("mailbox");
    let outbox = dir.join(a.id());
    std::fs::create_dir_all(&outbox).unwrap();
    // A flight from outside the group, dropped into A's folder.
    let stranger = GroupKey::new([9u8; 32]);
    let forged = Flight {
        from: a.id().to_string(),
        name: "evil".into(),
        seq: 50,
        to: vec![b.id().to_string()],
        time: 0,
        acks: Vec::new(),
        letters: vec![Letter {
            from: "MAIN".into(),
            peer: b.id().to_string(),
            to: "ALT".into(),
            bytes: msg(9),
        }],
    };
    std::fs::write(outbox.join("0000000050.msgs"), forged.encode(&stranger)).unwrap();
    // Sync engines' side files, and junk.
    for name in [
        ".syncthing.0000000051.msgs.tmp",
        "0000000052.sync-conflict-20261201-101010-ABCDEFG.msgs",
        "~syncthing~0000000053.msgs.tmp",
        ".part-0000000054",
        "notes.txt",
    ] {
        std::fs::write(outbox.join(name), b"junk").unwrap();
    }
    // A real flight, replayed under another number.
    let to = remote_addr(b.id(), "ALT");
    a.send("local:/a/GuildHelper.lua", &to, vec![msg(1)])
        .unwrap();
    a.flush().unwrap();
    let real = list_flights(a.folder(), a.id())
        .into_iter()
        .find(|s| *s != 50)
        .unwrap();
    std::fs::copy(
        dir.join(flight_path(a.id(), real)),
        outbox.join("0000000060.msgs"),
    )
    .unwrap();
    let got = b.recv().unwrap();
    assert_eq!(got.len(), 1, "only the real flight, once");
    let notices = b.take_notices();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices.iter().any(|n| matches!(
        n,
        Notice::Ignored {
            why: FlightError::Unauthenticated,
            ..
        }
    )));
    assert!(b.recv().unwrap().is_empty());
    assert!(b.take_notices().is_empty(), "told once");
    // The writer removes conflict copies of its own flights, and nothing else that is not its.
    a.clean().unwrap();
    assert!(
        !outbox
            .join("0000000052.sync-conflict-20261201-101010-ABCDEFG.msgs")
            .exists()
    );
    assert!(outbox.join("notes.txt").exists());
    assert!(outbox.join(".part-0000000054").exists());
}

#[test]
fn a_folder_that_is_not_a_mailbox_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let key = GroupKey::new([3u8; 32]);
    assert!(matches!(
        Mailbox::open(tmp.path(), config(tmp.path(), "x", &key)),
        Err(TransportError::NotAMailbox(_))
    ));
}

#[test]
fn a_memory_folder_lists_names_like_a_directory_does() {
    let mut f = MemFolder::default();
    for p in ["abc/x", "abc/y/z", "abc-1", "b/c", "abd"] {
        f.write("", "", p, b"1").unwrap();
    }
    let mut root = f.list("");
    root.sort();
    assert_eq!(root, ["abc", "abc-1", "abd", "b"]);
    assert_eq!(f.list("abc"), ["x", "y"]);
    assert_eq!(f.list("abc/y"), ["z"]);
    assert!(f.list("nothing").is_empty());
}

#[test]
fn a_lost_flight_is_skipped_after_a_while_and_its_writer_cleans_up() {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    let clock = Rc::new(Cell::new(1_000_000));
    let folder = MemFolder::new(Clock::Virtual(Rc::clone(&clock)));
    let key = GroupKey::new([3u8; 32]);
    let open = |name: &str| {
        let cfg = MailboxConfig {
            key: key.clone(),
            name: name.into(),
            state: StateStore::Memory(Rc::new(RefCell::new(None))),
            timing: Timing::default(),
            clock: Clock::Virtual(Rc::clone(&clock)),
        };
        Mailbox::with_folder(folder.clone(), cfg).unwrap()
    };
    let (mut a, mut b) = (open("pc-one"), open("pc-two"));
    a.add_local("MAIN", "local:a");
    b.add_local("ALT", "local:b");
    let to = remote_addr(b.id(), "ALT");
    for n in 1..=3 {
        a.send("local:a", &to, vec![msg(n)]).unwrap();
        a.flush().unwrap();
    }
    // The carrier loses the second flight.
    let id = a.id().to_string();
    folder.delete(&flight_path(&id, 2));
    assert_eq!(b.recv().unwrap().len(), 2);
    let ack = |b: &mut Mailbox<MemFolder>, a: &mut Mailbox<MemFolder>| {
        b.send("local:b", &remote_addr(a.id(), "MAIN"), vec![msg(9)])
            .unwrap();
        b.flush().unwrap();
        a.recv().unwrap();
        a.clean().unwrap()
    };
    assert_eq!(ack(&mut b, &mut a), 1, "only the flight before the gap");
    clock.set(clock.get() + GAP_GRACE_MS + 1);
    assert!(b.recv().unwrap().is_empty());
    assert_eq!(
        ack(&mut b, &mut a),
        1,
        "the flight after the gap, once it is given up"
    );
    assert!(list_flights(&folder, &id).is_empty());
}

#[test]
fn retry_timing_follows_the_carriers_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let key = GroupKey::new([3u8; 32]);
    let now = std::rc::Rc::new(std::cell::Cell::new(1_000_000));
    let clock = Clock::Virtual(std::rc::Rc::clone(&now));
    let folder = MemFolder::new(clock.clone());
    let open = |name: &str| {
        let mut cfg = config(tmp.path(), name, &key);
        cfg.clock = clock.clone();
        cfg.timing = Timing {
            retry_ms: 30_000,
            max_retries: 20,
        };
        Mailbox::with_folder(folder.clone(), cfg).unwrap()
    };
    let (mut a, mut b) = (open("pc-one"), open("pc-two"));
    a.add_local("MAIN", "local:/a");
    b.add_local("ALT", "local:/b");
    assert_eq!(a.timing().retry_ms, 30_000, "nothing measured yet");
    // Each answer comes 2 s after the question: retries follow at a few round trips.
    for _ in 0..3 {
        a.send("local:/a", &remote_addr(b.id(), "ALT"), vec![msg(1)])
            .unwrap();
        a.flush().unwrap();
        now.set(now.get() + 1_000);
        assert_eq!(b.recv().unwrap().len(), 1);
        b.send("local:/b", &remote_addr(a.id(), "MAIN"), vec![msg(2)])
            .unwrap();
        b.flush().unwrap();
        now.set(now.get() + 1_000);
        assert_eq!(a.recv().unwrap().len(), 1);
    }
    let t = a.timing();
    assert_eq!(t.retry_ms, 8_000, "{t:?}");
    assert!(
        t.max_retries >= 60,
        "still about 10 minutes before giving up: {t:?}"
    );
}

#[test]
fn an_account_with_a_long_or_odd_name_is_reached_by_the_name_it_announces() {
    let (_tmp, mut a, mut b, _) = pair();
    let odd = "Guild|bank account with a name far longer than forty-eight bytes";
    a.add_local(odd, "local:/odd/GuildHelper.lua");
    let announced = crate::protocol::wire::Name::sanitize(odd).to_string();
    assert_ne!(announced, odd);
    b.send(
        "local:/b/GuildHelper.lua",
        &remote_addr(a.id(), &announced),
        vec![msg(5)],
    )
    .unwrap();
    b.flush().unwrap();
    let got = a.recv().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(&*got[0].to, "local:/odd/GuildHelper.lua");
}
