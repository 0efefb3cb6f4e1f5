//! Two PCs (two WoW folders, two state folders) kept in step through one shared mailbox
//! folder, by the real binary: `mailbox init`, `watch --mailbox`, `sync --mailbox`,
//! `status --mailbox`, `sessions reset --peer`, and hostile files in the folder.

use std::path::{Path, PathBuf};

use crate::watch_cli::{Watch, Wow};

pub struct Group {
    pub dir: tempfile::TempDir,
}

impl Group {
    /// A mailbox folder and its key, made by `svsync mailbox init`.
    pub fn new() -> Group {
        let g = Group {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = init(&g.mailbox(), &g.key());
        assert!(out.status.success(), "{out:?}");
        g
    }

    /// `status --json` of the group, as seen with `wow`'s state folder.
    pub fn status_json(&self, wow: &Wow) -> (std::process::Output, serde_json::Value) {
        let out = wow
            .svsync()
            .args(["status", "--json", "--mailbox"])
            .arg(self.mailbox())
            .arg("--group-key-file")
            .arg(self.key())
            .output()
            .unwrap();
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out, doc)
    }

    pub fn mailbox(&self) -> PathBuf {
        self.dir.path().join("shared mailbox")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("guild.key")
    }

    /// The flags of a command that joins this group as `name`, with mailbox `dir`.
    pub fn args_for(&self, dir: &Path, name: &str) -> Vec<String> {
        vec![
            "--mailbox".into(),
            dir.display().to_string(),
            "--group-key-file".into(),
            self.key().display().to_string(),
            "--name".into(),
            name.into(),
        ]
    }

    pub fn args(&self, name: &str) -> Vec<String> {
        self.args_for(&self.mailbox(), name)
    }
}

/// `svsync mailbox init DIR --key-file KEY`.
pub fn init(dir: &Path, key: &Path) -> std::process::Output {
    assert_cmd::Command::cargo_bin("svsync")
        .unwrap()
        .args(["mailbox", "init"])
        .arg(dir)
        .arg("--key-file")
        .arg(key)
        .output()
        .unwrap()
}

/// `watch ALPHA --wtf ... --mailbox ...` on one PC.
pub fn watch_pc(wow: &Wow, group_args: &[String]) -> Watch {
    let mut args: Vec<String> = vec![
        "ALPHA".into(),
        "--wtf".into(),
        wow.root().join("_retail_").display().to_string(),
    ];
    args.extend(group_args.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Watch::start(wow, &args)
}

/// PC 1 and PC 2 each hold ALPHA, with a toon of their own.
pub fn two_pcs() -> (Wow, Wow) {
    let (one, two) = (Wow::new(), Wow::new());
    one.save_with_toon("ALPHA", "Pcone-Eonar");
    two.save_with_toon("ALPHA", "Pctwo-Eonar");
    (one, two)
}

/// Saves on each side reach the other; after PC 2's watch restarts, a new save still does.
pub fn exchange(one: &Wow, two: &Wow, args_one: &[String], args_two: &[String]) {
    let w1 = watch_pc(one, args_one);
    let w2 = watch_pc(two, args_two);
    w2.wait_until("PC 1's toon on PC 2", || two.has("ALPHA", "Pcone-Eonar"));
    w1.wait_until("PC 2's toon on PC 1", || one.has("ALPHA", "Pctwo-Eonar"));
    // A save on PC 1 while both run.
    one.save_with_toon("ALPHA", "Later-Eonar");
    w2.wait_until("PC 1's later save on PC 2", || {
        two.has("ALPHA", "Later-Eonar")
    });
    // PC 2 stops; PC 1 saves; PC 2 starts again and catches up, and its own new save arrives.
    drop(w2);
    one.save_with_toon("ALPHA", "Whileaway-Eonar");
    two.save_with_toon("ALPHA", "Backagain-Eonar");
    let w2 = watch_pc(two, args_two);
    w2.wait_until("PC 1's save made while PC 2 was off", || {
        two.has("ALPHA", "Whileaway-Eonar")
    });
    w1.wait_until("PC 2's save after its restart", || {
        one.has("ALPHA", "Backagain-Eonar")
    });
    // Every file svsync wrote loads in Lua 5.1.
    for w in [one, two] {
        crate::support::lua51_globals(&w.read("ALPHA")).unwrap();
    }
}

#[test]
fn two_pcs_through_a_shared_folder_exchange_saves_and_survive_a_restart() {
    let g = Group::new();
    let (one, two) = two_pcs();
    exchange(&one, &two, &g.args("PC one"), &g.args("PC two"));
    // Syncs to another PC are logged like local ones.
    let log = std::fs::read_to_string(one.state().join("logs/sender.log")).unwrap_or_default();
    assert!(
        log.contains("whether it is idle") && log.contains("confirmed"),
        "sender.log: {log}"
    );

    // Status lists both PCs, their accounts and the last sync, read only.
    let before = files_under(&g.mailbox());
    let (out, doc) = g.status_json(&one);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peers = doc["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "{doc}");
    for p in peers {
        assert!(["PC one", "PC two"].contains(&p["name"].as_str().unwrap()));
        assert_eq!(p["accounts"], serde_json::json!(["ALPHA"]));
        assert_eq!(p["online"], true);
        assert!(p["last_seen"].as_str().unwrap().starts_with("20"));
        let this = p["this_pc"].as_bool().unwrap();
        assert_eq!(this, p["name"] == "PC one");
        if !this {
            assert!(p["last_sync"].as_str().is_some(), "{doc}");
        }
    }
    assert_eq!(
        files_under(&g.mailbox()),
        before,
        "status wrote into the mailbox"
    );

    // Sessions with one PC can be cleared alone.
    let id = peers.iter().find(|p| p["name"] == "PC two").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = one
        .svsync()
        .args(["sessions", "reset", "--json", "--peer", &id])
        .output()
        .unwrap();
    assert!(out.status.success());
    let cleared: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(cleared["cleared"].as_u64().unwrap() > 0, "{cleared}");
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn a_one_shot_sync_meets_a_watching_pc_and_exits_0() {
    let g = Group::new();
    let (one, two) = two_pcs();
    let w1 = watch_pc(&one, &g.args("PC one"));
    let out = two
        .svsync()
        .args(["sync", "ALPHA", "--wtf"])
        .arg(two.root().join("_retail_"))
        .args(g.args("PC two"))
        .args(["--wait", "90"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("hold this PC's data"), "{text}");
    w1.wait_until("PC 2's toon on PC 1", || one.has("ALPHA", "Pctwo-Eonar"));
    assert!(two.has("ALPHA", "Pcone-Eonar"), "{text}");
}

#[test]
fn files_from_outside_the_group_change_nothing_and_are_reported() {
    use svsync::transport::mailbox::flight::{Flight, GroupKey, Letter};
    let g = Group::new();
    let (one, _) = two_pcs();
    let before = one.read("ALPHA");
    // A stranger's outbox: a well-formed flight under another key, offering data to everyone,
    // a damaged file, and an oversized one.
    let outbox = g.mailbox().join("00112233aabbccdd");
    std::fs::create_dir_all(&outbox).unwrap();
    let forged = Flight {
        from: "00112233aabbccdd".into(),
        name: "\u{1b}[31mevil\u{7}".into(),
        seq: 1,
        to: vec!["*".into()],
        time: 0,
        acks: Vec::new(),
        letters: vec![Letter {
            from: "EVIL".into(),
            peer: "*".into(),
            to: "*".into(),
            bytes: b"GH_ONLINE\tEvil-Eonar\tEVIL\t1".to_vec(),
        }],
    };
    let stranger = GroupKey::new([7u8; 32]);
    std::fs::write(outbox.join("0000000001.msgs"), forged.encode(&stranger)).unwrap();
    std::fs::write(outbox.join("0000000002.msgs"), b"\x00\xffnot a flight\n").unwrap();
    std::fs::write(outbox.join("0000000003.msgs"), vec![b'x'; 40 << 20]).unwrap();
    let w = watch_pc(&one, &g.args("PC one"));
    w.wait_for("the forged file to be reported", |l| {
        l.iter()
            .any(|x| x.contains("0000000001.msgs") && x.contains("not from this group"))
    });
    w.wait_for("the oversized file to be reported", |l| {
        l.iter().any(|x| x.contains("0000000003.msgs"))
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    let lines = w.lines();
    assert!(
        lines
            .iter()
            .all(|l| !l.contains('\u{1b}') && !l.contains('\u{7}')),
        "{lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("0000000001.msgs"))
            .count(),
        1,
        "told once: {lines:?}"
    );
    drop(w);
    assert_eq!(one.read("ALPHA"), before, "the account file changed");
    // Status does not list the stranger.
    let (_, doc) = g.status_json(&one);
    let names: Vec<&str> = doc["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["PC one"], "{doc}");
}

#[test]
fn the_group_key_is_made_once_kept_out_of_the_folder_and_required() {
    let g = Group::new();
    let key = std::fs::read_to_string(g.key()).unwrap();
    assert_eq!(key.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(g.key()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
    }
    // An existing key is never replaced; a key inside the folder is refused.
    let out = init(&g.mailbox(), &g.key());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(g.key()).unwrap(), key);
    let out = init(
        &g.mailbox(),
        &g.mailbox().join("sub").join("..").join("k.key"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must not be inside"));
    // --mailbox needs the key; a wrong key file is a sentence and 2; a folder that is not a
    // mailbox says how to make one.
    let wow = Wow::new();
    let wtf = wow.root().join("_retail_");
    let out = wow
        .svsync()
        .args(["sync", "ALPHA", "--wtf"])
        .arg(&wtf)
        .arg("--mailbox")
        .arg(g.mailbox())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--group-key-file"));
    std::fs::write(g.dir.path().join("bad.key"), "not a key").unwrap();
    let out = wow
        .svsync()
        .args(["sync", "ALPHA", "--wtf"])
        .arg(&wtf)
        .arg("--mailbox")
        .arg(g.mailbox())
        .arg("--group-key-file")
        .arg(g.dir.path().join("bad.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 hex digits"));
    let out = wow
        .svsync()
        .args(["sync", "ALPHA", "--wtf"])
        .arg(&wtf)
        .arg("--mailbox")
        .arg(g.dir.path())
        .arg("--group-key-file")
        .arg(g.key())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("svsync mailbox init"));
}

/// A peer holding the group key but sending crafted messages (sizes no channel can carry, a
/// session that never ends): PC 1's file is untouched, its watch keeps running, and a real PC
/// still gets its data through afterwards.
#[test]
fn a_peer_with_the_key_sending_impossible_sizes_changes_nothing_and_blocks_no_one() {
    use svsync::transport::mailbox::flight::{Flight, GroupKey, Letter};
    let g = Group::new();
    let (one, two) = two_pcs();
    let before = one.read("ALPHA");
    let w1 = watch_pc(&one, &g.args("PC one"));
    let outboxes = || -> Vec<String> {
        std::fs::read_dir(g.mailbox())
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    w1.wait_until("PC 1's outbox", || !outboxes().is_empty());
    let pc_one = outboxes().remove(0);
    let key = GroupKey::parse(&std::fs::read_to_string(g.key()).unwrap()).unwrap();
    let sign = |body: &str| format!("{body}|{:08x}", crc32fast::hash(body.as_bytes())).into_bytes();
    let letters = [
        "SYNC_REQUEST|00000003|2|Evil-Eonar|EVIL|-|-,a06e253d,-,-,-",
        "SYNC_INITIATE|00000003|news|1073741824|1073741824|a06e253d",
        "SYNC_CONFIRM_REQUEST|00000003|news|1073741824|1073741824|a06e253d",
        "SYNC_COMMIT|00000003|news",
    ]
    .iter()
    .map(|body| Letter {
        from: "EVIL".into(),
        peer: pc_one.clone(),
        to: "ALPHA".into(),
        bytes: sign(body),
    })
    .collect();
    let evil = "00112233aabbccdd";
    let flight = Flight {
        from: evil.into(),
        name: "evil".into(),
        seq: 1,
        to: vec![pc_one.clone()],
        time: svsync::time::now_ms(),
        acks: Vec::new(),
        letters,
    };
    std::fs::create_dir_all(g.mailbox().join(evil)).unwrap();
    std::fs::write(
        g.mailbox().join(evil).join("0000000001.msgs"),
        flight.encode(&key),
    )
    .unwrap();
    // PC 1 answers the crafted session (it writes a flight to the stranger), then a real PC
    // comes and its data arrives: no one is left busy.
    w1.wait_until("PC 1's answer to the crafted session", || {
        std::fs::read_dir(g.mailbox().join(&pc_one))
            .unwrap()
            .flatten()
            .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("SYNC_ERROR")))
    });
    assert_eq!(
        one.read("ALPHA"),
        before,
        "the crafted session changed the file"
    );
    let _w2 = watch_pc(&two, &g.args("PC two"));
    w1.wait_until("PC 2's toon on PC 1", || one.has("ALPHA", "Pctwo-Eonar"));
    assert!(!one.has("ALPHA", "Evil"));
}
