//! Never lose a byte of a player's file: concurrent writers, backups that failures cannot evict,
//! links, modes and owners, `--output` onto an account, a full disk, tampered and damaged state,
//! control characters from files, and `restore`. Through the real binary.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::merge_cli::{Tree, backups, stderr, stdout};

const ALPHA_NEWS: &str = "202501051930127731";
const CHARLIE_NEWS: &str = "202412051200001111";

fn has(file: &Path, needle: &str) -> bool {
    String::from_utf8_lossy(&std::fs::read(file).unwrap()).contains(needle)
}

/// Two merges into one receiver at once, 100 times, the receiver named two ways and each
/// process with its own state folder half of the time: no merge that says it wrote is lost.
#[test]
fn two_concurrent_merges_into_one_receiver_never_lose_a_merge() {
    let bin = assert_cmd::cargo::cargo_bin("svsync");
    let mut both = 0;
    for round in 0..100 {
        let t = Tree::new();
        let bravo_rel =
            "World of Warcraft/_retail_/WTF/Account/BRAVO/SavedVariables/GuildHelper.lua";
        let spawn = |from: &str, to_by_path: bool, state: &str| {
            let mut c = Command::new(&bin);
            c.current_dir(t.dir.path())
                .env("SVSYNC_STATE_DIR", t.dir.path().join(state))
                .arg("merge")
                .arg(from)
                .args(["--wtf", "World of Warcraft/_retail_/WTF"]);
            if to_by_path {
                c.arg(format!("./{bravo_rel}"));
            } else {
                c.arg("BRAVO");
            }
            c.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let shared_state = round % 2 == 0;
        let a = spawn("ALPHA", false, "state-a");
        let c = spawn(
            "CHARLIE",
            true,
            if shared_state { "state-a" } else { "state-c" },
        );
        let (a, c) = (a.wait_with_output().unwrap(), c.wait_with_output().unwrap());
        let file = t.file("BRAVO");
        for (out, news) in [(&a, ALPHA_NEWS), (&c, CHARLIE_NEWS)] {
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() {
                assert!(text.contains("Wrote"), "round {round}: {text}");
                assert!(
                    has(&file, news),
                    "round {round}: a merge that wrote was lost"
                );
            } else {
                // The only acceptable failure: told busy (nothing written, nothing lost).
                let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
                assert!(all.contains("busy"), "round {round}: {all}");
            }
        }
        if a.status.success() && c.status.success() {
            both += 1;
        }
        crate::support::lua51_globals(&std::fs::read(&file).unwrap()).unwrap();
    }
    // Mostly both get through: the second waits for the first.
    assert!(both >= 90, "{both} of 100 rounds had both merges");
}

/// Writes that fail take no backup, so failures cannot evict the real ones; the oldest
/// backup (the player's original) survives any number of writes.
#[test]
fn failed_writes_never_evict_backups_and_the_original_is_always_kept() {
    let t = Tree::new();
    let original = std::fs::read(t.file("BRAVO")).unwrap();
    t.svsync()
        .arg("merge")
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let first = backups(&t.file("BRAVO"));
    assert_eq!(first.len(), 1);
    // Read-only: refused six times, no backup taken.
    let mut p = std::fs::metadata(t.file("BRAVO")).unwrap().permissions();
    p.set_readonly(true);
    std::fs::set_permissions(t.file("BRAVO"), p.clone()).unwrap();
    for _ in 0..6 {
        t.svsync()
            .arg("merge")
            .arg(t.account("CHARLIE"))
            .arg(t.account("BRAVO"))
            .assert()
            .code(2);
    }
    assert_eq!(backups(&t.file("BRAVO")), first);
    #[allow(clippy::permissions_set_readonly_false)]
    p.set_readonly(false);
    std::fs::set_permissions(t.file("BRAVO"), p).unwrap();
    // Many successful writes: the original stays.
    for i in 0..8 {
        let from = if i % 2 == 0 { "CHARLIE" } else { "ALPHA" };
        let text = std::fs::read(t.file(from)).unwrap();
        let with = crate::watch_cli::with_toon(&text, &format!("Backup{i}-Test"));
        std::fs::write(t.file(from), with).unwrap();
        t.svsync()
            .arg("merge")
            .arg(t.account(from))
            .arg(t.account("BRAVO"))
            .assert()
            .success();
    }
    let all = backups(&t.file("BRAVO"));
    assert_eq!(all.len(), 9, "{all:?}");
    assert_eq!(
        std::fs::read(&all[0]).unwrap(),
        original,
        "the original was evicted"
    );
}

/// A symlinked GuildHelper.lua (players link SavedVariables across accounts) is written
/// through: the link stays a link, its target gets the merge, the backup sits beside it.
#[cfg(unix)]
#[test]
fn a_symlinked_file_is_written_through_and_stays_a_link() {
    let t = Tree::new();
    let shared = t.dir.path().join("shared data");
    std::fs::create_dir_all(&shared).unwrap();
    let real = shared.join("GuildHelper.lua");
    std::fs::rename(t.file("BRAVO"), &real).unwrap();
    std::os::unix::fs::symlink(&real, t.file("BRAVO")).unwrap();
    t.svsync()
        .arg("merge")
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    assert!(
        std::fs::symlink_metadata(t.file("BRAVO"))
            .unwrap()
            .is_symlink()
    );
    assert!(has(&real, ALPHA_NEWS));
    assert_eq!(backups(&real).len(), 1);
    assert!(
        backups(&t.file("BRAVO"))
            .iter()
            .all(|b| b.starts_with(&shared))
    );
}

#[cfg(unix)]
#[test]
fn a_hard_linked_file_is_refused_with_a_sentence_and_both_names_stay_alike() {
    let t = Tree::new();
    let other = t.dir.path().join("other account's GuildHelper.lua");
    std::fs::hard_link(t.file("BRAVO"), &other).unwrap();
    let before = std::fs::read(&other).unwrap();
    let out = t
        .svsync()
        .arg("merge")
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hard link") && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(std::fs::read(&other).unwrap(), before);
    assert_eq!(std::fs::read(t.file("BRAVO")).unwrap(), before);
    assert!(
        backups(&t.file("BRAVO")).is_empty(),
        "no backup for a write that did not happen"
    );
}

#[cfg(unix)]
#[test]
fn mode_and_owner_are_kept_and_a_read_only_file_is_refused_unless_forced() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = Tree::new();
    let file = t.file("BRAVO");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        // As root on a player's file: the file must keep the player's owner.
        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
    }
    t.svsync()
        .arg("merge")
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    if root {
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    }
    // Read-only on purpose: refused with a sentence, then written with --force, still
    // read-only.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::read(&file).unwrap();
    let out = t
        .svsync()
        .arg("merge")
        .arg(t.account("CHARLIE"))
        .arg(t.account("BRAVO"))
        .assert()
        .code(2);
    let err = stderr(out.get_output());
    assert!(err.contains("is read-only"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    t.svsync()
        .args(["merge", "--force"])
        .arg(t.account("CHARLIE"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    assert!(has(&file, CHARLIE_NEWS));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o444
    );
}

#[test]
fn output_onto_an_accounts_file_or_an_existing_file_is_refused_unless_forced() {
    let t = Tree::new();
    let alpha = std::fs::read(t.file("ALPHA")).unwrap();
    for (target, which) in [("ALPHA", "FROM"), ("BRAVO", "TO")] {
        let out = t
            .svsync()
            .args(["merge", "--output"])
            .arg(t.account(target).join("SavedVariables/GuildHelper.lua"))
            .arg(t.account("ALPHA"))
            .arg(t.account("BRAVO"))
            .assert()
            .code(2);
        let err = stderr(out.get_output());
        assert!(
            err.contains(&format!("that is {which}'s own file")),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(t.file("ALPHA")).unwrap(), alpha);
    let other = t.dir.path().join("merged.lua");
    std::fs::write(&other, b"Keep = 1\n").unwrap();
    let out = t
        .svsync()
        .args(["merge", "--output"])
        .arg(&other)
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .code(2);
    assert!(stderr(out.get_output()).contains("the file exists"));
    t.svsync()
        .args(["merge", "--force", "--output"])
        .arg(&other)
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    assert!(has(&other, ALPHA_NEWS));
    let kept = backups(&other);
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read(&kept[0]).unwrap(), b"Keep = 1\n");
}

/// The disk fills up while the merged file is written (a file-size limit stands in for it):
/// nothing partial is left, the message says what happened, and the file is untouched.
#[cfg(unix)]
#[test]
fn a_full_disk_leaves_no_partial_file_and_says_so() {
    let t = Tree::new();
    let before = std::fs::read(t.file("BRAVO")).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("svsync");
    // Ignored signals stay ignored across exec: the write fails with EFBIG instead.
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"trap "" XFSZ; ulimit -f 8; exec "$0" merge "$1" "$2""#)
        .arg(&bin)
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .env("SVSYNC_STATE_DIR", t.state())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("File too large") || err.contains("No space"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    assert!(
        err.contains("nothing was written") && !err.contains(".svsync-"),
        "{err}"
    );
    assert_eq!(std::fs::read(t.file("BRAVO")).unwrap(), before);
    for e in std::fs::read_dir(t.account("BRAVO").join("SavedVariables"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".tmp") && !name.ends_with(".bak"),
            "{name} left behind"
        );
    }
    // With room again it goes through.
    t.svsync()
        .arg("merge")
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
}

/// A staged table edited in the state folder is not trusted: it fails its checksum, is
/// discarded, and its table travels again.
#[test]
fn a_tampered_staged_table_is_discarded_and_received_again() {
    let t = Tree::new();
    let probe = Tree::new();
    probe
        .svsync()
        .arg("merge")
        .arg(probe.account("ALPHA"))
        .arg(probe.account("BRAVO"))
        .assert()
        .success();
    let want = std::fs::read(probe.file("BRAVO")).unwrap();
    t.svsync()
        .args(["merge", "--simulate", "crash-after=20"])
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .code(137);
    let staged: Vec<_> = walkdir::WalkDir::new(t.state().join("journal"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .map(|e| e.into_path())
        .collect();
    assert!(!staged.is_empty());
    for f in &staged {
        let text = std::fs::read_to_string(f).unwrap();
        std::fs::write(f, text.replace("Loot rules", "Evil rules")).unwrap();
    }
    let out = t
        .svsync()
        .args(["merge", "--json"])
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    assert_eq!(v["resumed"], true);
    assert_eq!(std::fs::read(t.file("BRAVO")).unwrap(), want);
    assert!(!has(&t.file("BRAVO"), "Evil rules"));
}

/// Control characters in names that come from files or folders never reach the terminal or
/// the logs raw.
#[cfg(unix)]
#[test]
fn control_characters_from_files_are_escaped_in_output_and_logs() {
    let t = Tree::new();
    let evil = "Evil\u{1b}[31m\nName";
    crate::merge_cli::copy_dir(&t.account("ALPHA"), &t.wtf().join("Account").join(evil));
    let evil_account = t.wtf().join("Account").join(evil);
    let out = t
        .svsync()
        .arg("merge")
        .arg(&evil_account)
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let text = stdout(out.get_output());
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("Evil\\u{1b}[31m\\nName"), "{text}");
    let out = t.svsync().args(["sessions", "list"]).assert().success();
    let list = stdout(out.get_output());
    assert!(!list.contains('\u{1b}'), "{list:?}");
    for log in ["sender.log", "receiver.log"] {
        let text = std::fs::read_to_string(t.state().join("logs").join(log)).unwrap();
        assert!(!text.contains('\u{1b}'), "{log}: {text:?}");
        assert!(text.lines().all(|l| l.starts_with("20")), "{log}: {text:?}");
    }
}

/// A damaged session record is moved aside (kept for inspection) and said once; every command
/// goes on, and reset always works.
#[test]
fn a_damaged_session_record_is_moved_aside_and_reset_always_works() {
    let t = Tree::new();
    t.svsync()
        .arg("merge")
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let sessions = t.state().join("sessions");
    let record = std::fs::read_dir(&sessions)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("recv-"))
        .unwrap()
        .path();
    std::fs::write(&record, b"\0\0{ not json").unwrap();
    let out = t.svsync().args(["sessions", "list"]).assert().success();
    assert!(stdout(out.get_output()).contains("a damaged session record was moved aside"));
    assert!(!record.exists());
    t.svsync()
        .arg("merge")
        .arg(t.account("CHARLIE"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    std::fs::write(sessions.join("recv-0000abcd.json"), b"garbage").unwrap();
    t.svsync().args(["sessions", "reset"]).assert().success();
    let out = t.svsync().args(["sessions", "list"]).assert().success();
    assert!(stdout(out.get_output()).starts_with("No sessions"));
}

#[test]
fn restore_lists_backups_and_puts_one_back_keeping_the_current_file() {
    let t = Tree::new();
    let original = std::fs::read(t.file("BRAVO")).unwrap();
    for from in ["ALPHA", "CHARLIE"] {
        t.svsync()
            .arg("merge")
            .arg(t.account(from))
            .arg(t.account("BRAVO"))
            .assert()
            .success();
    }
    let merged = std::fs::read(t.file("BRAVO")).unwrap();
    let out = t
        .svsync()
        .arg("restore")
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let text = stdout(out.get_output());
    assert!(text.contains("(the original, always kept)"), "{text}");
    assert!(text.contains("roster 3"), "{text}");
    let out = t
        .svsync()
        .args(["restore", "--json"])
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    let list = v["backups"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["original"], true);
    assert_eq!(list[0]["entries"]["roster"], 3);
    let out = t
        .svsync()
        .args(["restore", "--json"])
        .arg(t.account("BRAVO"))
        .arg("1")
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    assert_eq!(std::fs::read(t.file("BRAVO")).unwrap(), original);
    let kept = v["backup_of_current"].as_str().unwrap();
    assert_eq!(std::fs::read(kept).unwrap(), merged);
    let out = t
        .svsync()
        .arg("restore")
        .arg(t.account("BRAVO"))
        .arg("99")
        .assert()
        .code(2);
    assert!(stderr(out.get_output()).contains("no backup `99`"));
    // A damaged file: status says where the backups are.
    std::fs::write(t.file("BRAVO"), &merged[..merged.len() / 2]).unwrap();
    let out = t.svsync().arg("status").arg(t.wtf()).assert().success();
    let text = stdout(out.get_output());
    assert!(text.contains("`svsync restore \""), "{text}");
}

#[test]
fn a_deleted_account_file_is_put_back_from_its_backup() {
    let t = Tree::new();
    t.svsync()
        .arg("merge")
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let original = std::fs::read(&backups(&t.file("BRAVO"))[0]).unwrap();
    std::fs::remove_file(t.file("BRAVO")).unwrap();
    // Listed by folder, and by name with --wtf, although the file is gone.
    let out = t
        .svsync()
        .arg("restore")
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    assert!(stdout(out.get_output()).contains("(the original, always kept)"));
    t.svsync()
        .args(["restore", "BRAVO", "1", "--wtf"])
        .arg(t.wtf())
        .assert()
        .success();
    assert_eq!(std::fs::read(t.file("BRAVO")).unwrap(), original);
    assert_eq!(
        backups(&t.file("BRAVO")).len(),
        1,
        "nothing to keep of a missing file"
    );
}
