//! `svsync sync` and `svsync status` on a set of accounts, and several svsync processes at once.

use serde_json::Value;

use crate::watch_cli::{Watch, Wow, count, original};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn sync_all_then_status_says_in_step_and_a_second_sync_writes_nothing() {
    let wow = Wow::new();
    let before = wow.read("DELTA");
    let out = wow
        .svsync()
        .args(["sync", "--all", "--wtf"])
        .arg(wow.root())
        .assert()
        .success();
    let text = stdout(out.get_output());
    assert!(text.ends_with("All 4 accounts in step.\n"), "{text}");
    // Three accounts of one flavor: six pairs.
    assert_eq!(
        count(&text.lines().map(String::from).collect::<Vec<_>>(), "->"),
        6,
        "{text}"
    );
    assert_eq!(wow.read("DELTA"), before);

    let out = wow
        .svsync()
        .args(["status", "--json"])
        .arg(wow.root())
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    assert_eq!(v["in_step"], true);
    assert_eq!(v["pairs"].as_array().unwrap().len(), 6);
    assert!(
        v["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["in_step"] == true)
    );
    let out = wow
        .svsync()
        .arg("status")
        .arg(wow.root())
        .assert()
        .success();
    assert!(stdout(out.get_output()).ends_with("All 4 accounts in step.\n"));

    let backups: Vec<usize> = ["ALPHA", "BRAVO", "CHARLIE"]
        .iter()
        .map(|n| wow.backups(n))
        .collect();
    let out = wow
        .svsync()
        .args(["sync", "--all", "--wtf"])
        .arg(wow.root())
        .assert()
        .success();
    assert!(!stdout(out.get_output()).contains("->"));
    let again: Vec<usize> = ["ALPHA", "BRAVO", "CHARLIE"]
        .iter()
        .map(|n| wow.backups(n))
        .collect();
    assert_eq!(backups, again);
}

#[test]
fn status_says_which_pairs_are_not_in_step_and_why() {
    let wow = Wow::new();
    let out = wow
        .svsync()
        .arg("status")
        .arg(wow.root().join("_retail_"))
        .assert()
        .success();
    let text = stdout(out.get_output());
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("Not in step: "), "{text}");
    assert!(
        last.contains("ALPHA -> BRAVO (BRAVO's sharedDataRemote lacks ALPHA's latest data)"),
        "{last}"
    );
    let out = wow
        .svsync()
        .args(["status", "--json"])
        .arg(wow.root())
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    assert_eq!(v["in_step"], false);
}

#[test]
fn named_accounts_of_two_flavors_are_refused_unless_mixed_on_purpose() {
    let wow = Wow::new();
    let out = wow
        .svsync()
        .arg("sync")
        .arg(wow.file("ALPHA"))
        .arg(wow.file("DELTA"))
        .assert()
        .code(2);
    let err = stderr(out.get_output());
    assert!(err.contains("does not mix flavors"), "{err}");
    assert!(err.contains("--mix-flavors"), "{err}");
    wow.svsync()
        .args(["sync", "--mix-flavors"])
        .arg(wow.file("ALPHA"))
        .arg(wow.file("DELTA"))
        .assert()
        .success();
    assert!(wow.has("DELTA", "202501051930127731"));
    let out = wow
        .svsync()
        .args(["sync"])
        .arg(wow.file("ALPHA"))
        .assert()
        .code(2);
    assert!(stderr(out.get_output()).contains("at least two accounts"));
    let out = wow.svsync().args(["sync", "--all"]).assert().code(2);
    assert!(stderr(out.get_output()).contains("--all --wtf DIR"));
    // The testing hooks of `merge` would be ignored by a set: refused, not silently dropped.
    for hook in [["--simulate", "drop=0.1"], ["--wire-log", "wire.jsonl"]] {
        for cmd in ["sync", "watch"] {
            let out = wow
                .svsync()
                .arg(cmd)
                .arg(wow.file("ALPHA"))
                .arg(wow.file("BRAVO"))
                .args(hook)
                .assert()
                .code(2);
            let err = stderr(out.get_output());
            assert!(
                err.contains("works with `svsync merge` only"),
                "{cmd}: {err}"
            );
        }
    }
}

/// Two watchers (of different accounts) and merges at once, sharing one state folder: no
/// session is left "active", and every account ends with the others' data.
#[test]
fn two_watchers_and_merges_at_once_lose_nothing() {
    let wow = Wow::new();
    wow.put("_retail_", "ECHO", &original("BRAVO"));
    let wtf = wow.root().join("_retail_/WTF");
    let wtf = wtf.to_str().unwrap();
    let first = Watch::start(&wow, &["ALPHA", "BRAVO", "--wtf", wtf]);
    let second = Watch::start(&wow, &["CHARLIE", "ECHO", "--wtf", wtf]);
    for _ in 0..3 {
        wow.svsync()
            .args(["merge", "ALPHA", "CHARLIE", "--wtf", wtf])
            .assert()
            .success();
        wow.svsync()
            .args(["merge", "ECHO", "BRAVO", "--wtf", wtf])
            .assert()
            .success();
    }
    // The merges put ECHO's data in BRAVO and ALPHA's in CHARLIE; each watcher keeps its own
    // pair in step around them (with the default target data goes from each account straight
    // to the others of its set, not through a third).
    first.wait_until("ALPHA's data in BRAVO", || {
        wow.has("BRAVO", "202501051930127731")
    });
    second.wait_until("CHARLIE's data in ECHO", || {
        wow.has("ECHO", "202412051200001111")
    });
    first.wait_in_step(0);
    second.wait_in_step(0);
    std::thread::sleep(std::time::Duration::from_secs(2));
    drop(first);
    drop(second);
    let out = wow
        .svsync()
        .args(["sessions", "list", "--json"])
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    let sessions = v["sessions"].as_array().unwrap();
    assert!(sessions.len() >= 12, "{}", sessions.len());
    for s in sessions {
        // Nothing is left half-done: every receiver's record is complete; a sender that found a
        // receiver busy says so (it was tried again later).
        match s["role"].as_str().unwrap() {
            "receive" => assert_eq!(s["state"], "complete", "{s}"),
            _ => assert!(s["state"] == "complete" || s["state"] == "busy", "{s}"),
        }
    }
    assert!(wow.has("CHARLIE", "202501051930127731"));
    assert!(wow.has("BRAVO", "202411301924102656"));
}
