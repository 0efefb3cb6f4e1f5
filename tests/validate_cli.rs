//! `svsync validate` through the real binary, on the files in `testdata/`.

use assert_cmd::Command;
use serde_json::Value;

use crate::support::testdata;

fn svsync() -> Command {
    Command::cargo_bin("svsync").unwrap()
}

#[test]
fn sample_tree_validates() {
    let out = svsync()
        .arg("validate")
        .arg(testdata().join("WTF"))
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("5 files checked: 0 errors, 10 warnings"),
        "{stdout}"
    );
    // BRAVO and CHARLIE hold the older layout, which GuildHelper 1.0.23f cannot read: every
    // synced table of theirs is flagged, once, with what it means for the player. ALPHA (the
    // current layout) is clean.
    for account in ["BRAVO", "CHARLIE"] {
        for table in ["setup", "news", "guildInfo", "calendar", "roster"] {
            let flagged = stdout.lines().any(|l| {
                l.contains(&format!("/{account}/"))
                    && l.contains(&format!("`sharedData.{table}` is in the older layout"))
                    && l.contains("GuildHelper 1.0.23f cannot read it and raises Lua errors")
            });
            assert!(flagged, "{account} {table}:\n{stdout}");
        }
    }
    assert!(!stdout.contains("/ALPHA/"), "{stdout}");
}

#[test]
fn every_real_world_file_validates() {
    let mut cmd = svsync();
    cmd.arg("validate");
    for entry in std::fs::read_dir(testdata().join("realworld")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "lua") {
            cmd.arg(path);
        }
    }
    cmd.assert().success();
}

#[test]
fn broken_file_exits_1_with_path_line_and_column() {
    let file = testdata().join("realworld/broken/Stubby-1.lua");
    let out = svsync().arg("validate").arg(&file).assert().code(1);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let expected = format!("{}:9:26: error: ", file.display());
    assert!(stdout.starts_with(&expected), "{stdout}");
}

#[test]
fn missing_path_exits_2_with_a_sentence() {
    let out = svsync().args(["validate", "no/such/WTF"]).assert().code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.trim(), "svsync: no/such/WTF: no such file or folder");
}

#[test]
fn bad_arguments_exit_2() {
    svsync().arg("validate").assert().code(2);
    svsync()
        .args(["validate", "--no-such-flag", "x"])
        .assert()
        .code(2);
    svsync().arg("frobnicate").assert().code(2);
}

#[test]
fn help_has_examples() {
    let out = svsync().args(["validate", "--help"]).assert().success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("Examples:") && stdout.contains("svsync validate"),
        "{stdout}"
    );
}

#[test]
fn json_has_exactly_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let sv = dir.path().join("WTF/Account/ME/SavedVariables");
    std::fs::create_dir_all(&sv).unwrap();
    std::fs::write(sv.join("Good.lua"), "\nGood = {\n}\n").unwrap();
    std::fs::write(sv.join("Bad.lua"), "\nBad = {\n  x = inf,\n}\n").unwrap();
    std::fs::write(sv.join("Bad.lua.bak"), "not lua at all").unwrap();
    std::fs::write(sv.join("GuildHelper.lua"), "\nGuildHelper_SavedVariables = {\n[\"sharedData\"] = {\n[\"news\"] = {\n\"oops\",\n},\n},\n}\n").unwrap();
    let out = svsync()
        .arg("validate")
        .arg(dir.path())
        .arg("--json")
        .assert()
        .code(1);
    let doc: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["files", "errors", "warnings"]);
    assert_eq!(doc["errors"], 1);
    // "oops" is not a record, and news is not in the current layout.
    assert_eq!(doc["warnings"], 2);
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "the .bak file is skipped");
    for f in files {
        let keys: Vec<&String> = f.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["path", "errors", "warnings"]);
    }
    let bad = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("Bad.lua"))
        .unwrap();
    let error = &bad["errors"][0];
    let keys: Vec<&String> = error.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["line", "column", "message"]);
    assert_eq!(
        (error["line"].as_u64(), error["column"].as_u64()),
        (Some(3), Some(7))
    );
    let gh = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("GuildHelper.lua"))
        .unwrap();
    assert_eq!(gh["warnings"][0]["line"], 5);
}

#[test]
fn truncated_file_is_reported_not_half_read() {
    let src =
        std::fs::read(testdata().join("WTF/Account/ALPHA/SavedVariables/GuildHelper.lua")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("GuildHelper.lua");
    std::fs::write(&file, &src[..src.len() / 2]).unwrap();
    let out = svsync().arg("validate").arg(&file).assert().code(1);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("cut off"), "{stdout}");
}

#[test]
fn guildhelper_structure_problems_are_reported_with_line_and_column() {
    let file = testdata().join("checks/GuildHelper.lua");
    let out = svsync().arg("validate").arg(&file).assert().code(1);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let p = file.display().to_string();
    for expected in [
        format!("{p}:41:15: error: `sharedData.setup` is a number, not a table"),
        format!(
            "{p}:9:4: warning: `sharedData.news` has the id \"202411301924102656\" twice (first on line 5)"
        ),
        format!("{p}:13:4: warning: an array entry of `sharedData.news` has no `id`"),
        format!("{p}:15:16: warning: an array entry of `sharedData.news`: `date` is \"yesterday\""),
        format!(
            "{p}:23:5: warning: `sharedData.calendar` is not a proper array: [3] follows a hole (no [2])"
        ),
        format!(
            "{p}:30:14: warning: `sharedData.guildInfo` entry \"202412311002451187\" has the id \"202412311002451188\"; the key is used"
        ),
        format!(
            "{p}:31:23: warning: `sharedData.guildInfo` entry \"202412311002451187\": `lastUpdated` is \"NA\", not a YYYYMMDDHHMMSS stamp"
        ),
        format!(
            "{p}:37:26: warning: `sharedData.roster` entry \"Sakarra-Skywall\" has no valid `lastUpdated` or `date`"
        ),
        format!(
            "{p}:44:14: warning: `sharedDataRemote.news` is a map keyed by id but `sharedData.news` is an array"
        ),
    ] {
        assert!(stdout.contains(&expected), "missing: {expected}\n{stdout}");
    }
    assert!(
        stdout.contains("1 file checked: 1 error, 13 warnings"),
        "{stdout}"
    );
}

#[test]
fn a_hexadecimal_float_is_refused_with_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Other.lua");
    std::fs::write(&file, "X = 0x1p4\n").unwrap();
    let out = svsync().arg("validate").arg(&file).assert().code(1);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains(&format!(
            "{}:1:5: error: `0x1p4` is a hexadecimal number with a fraction or exponent",
            file.display()
        )),
        "{stdout}"
    );
}
