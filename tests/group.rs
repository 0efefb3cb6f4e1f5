//! Twenty PCs syncing through copies of one shared folder, in the deterministic simulation: a
//! carrier that delays, duplicates, loses and conflicts files; PCs that stop and start; a game
//! save in the middle. Everyone must end with everyone's data, and an idle group writes nothing.

use std::time::Instant;

use svsync::lua::parse_with;
use svsync::merge::canonical::canonical;
use svsync::model::{Target, parse_options, shared_table};
use svsync::peer::harness::group::{Carrier, GroupSim};

use crate::support::testdata;

const HOUR: u64 = 3_600_000;
const TABLES: [&str; 5] = ["roster", "news", "guildInfo", "calendar", "setup"];

fn base() -> String {
    let path = testdata().join("WTF/Account/ALPHA/SavedVariables/GuildHelper.lua");
    String::from_utf8(std::fs::read(path).unwrap()).unwrap()
}

fn toon(i: usize) -> String {
    format!("Member{i:02}-Eonar")
}

/// ALPHA's file with a roster member of its own and a news post of its own; every PC also edits
/// Fatherrahl-Velen's rank at a different time (the latest edit must win everywhere).
fn pc_file(i: usize, stamp: u32) -> Vec<u8> {
    let name = toon(i);
    let member = format!(
        "\t\t\t[\"{name}\"] = {{\n\t\t\t\t[\"deleted\"] = false,\n\t\t\t\t[\"tableType\"] = \"roster\",\n\
         \t\t\t\t[\"lastUpdated\"] = \"20250201{stamp:06}\",\n\
         \t\t\t\t[\"guildName\"] = \"No Rest For The Wicked-Eonar\",\n\t\t\t\t[\"id\"] = \"{name}\",\n\
         \t\t\t\t[\"data\"] = {{\n\t\t\t\t\t[\"name\"] = \"{name}\",\n\t\t\t\t\t[\"class\"] = \"Mage\",\n\
         \t\t\t\t\t[\"level\"] = 80,\n\t\t\t\t\t[\"rank\"] = \"Member\",\n\t\t\t\t}},\n\t\t\t}},\n"
    );
    let id = format!("2025020112{i:02}00{stamp:04}");
    let post = format!(
        "\t\t\t[\"{id}\"] = {{\n\t\t\t\t[\"deleted\"] = false,\n\t\t\t\t[\"tableType\"] = \"news\",\n\
         \t\t\t\t[\"lastUpdated\"] = \"2025020112{i:02}00\",\n\
         \t\t\t\t[\"guildName\"] = \"No Rest For The Wicked-Eonar\",\n\t\t\t\t[\"id\"] = \"{id}\",\n\
         \t\t\t\t[\"data\"] = {{\n\t\t\t\t\t[\"title\"] = \"Post from PC {i}\",\n\
         \t\t\t\t\t[\"content\"] = \"{{\\\"pc\\\":{i}}}\",\n\t\t\t\t}},\n\t\t\t}},\n"
    );
    let text = base()
        .replacen("\t\t[\"roster\"] = {\n", &format!("\t\t[\"roster\"] = {{\n{member}"), 1)
        .replacen("\t\t[\"news\"] = {\n", &format!("\t\t[\"news\"] = {{\n{post}"), 1)
        .replacen(
            "[\"lastUpdated\"] = \"20241230173329\",\n\t\t\t\t[\"guildName\"] = \"No Reset For The Wicked-Eonar\",",
            &format!(
                "[\"lastUpdated\"] = \"202502{:02}000000\",\n\t\t\t\t[\"guildName\"] = \"Edited by PC {i}\",",
                10 + i
            ),
            1,
        );
    assert!(
        text.contains(&format!("Edited by PC {i}")),
        "the edit did not apply"
    );
    text.into_bytes()
}

/// The five data tables of `sharedData`, canonical (metadata is rebuilt by each merge).
fn shared(bytes: &[u8]) -> Vec<Vec<u8>> {
    let doc = parse_with(bytes, &parse_options()).unwrap();
    let shared = shared_table(&doc, "sharedData").unwrap().unwrap();
    TABLES
        .iter()
        .map(|t| shared.get_str(t).map(canonical).unwrap_or_default())
        .collect()
}

fn run_to_rest(sim: &mut GroupSim, limit: u64) {
    let end = sim.now() + limit;
    while sim.now() < end {
        let next = sim.now() + 10 * 60_000;
        sim.run_until(next);
        if sim.is_quiet() && converged(sim) {
            return;
        }
    }
}

fn converged(sim: &GroupSim) -> bool {
    let first = shared(&sim.pcs[0].account.bytes());
    sim.pcs.iter().all(|p| shared(&p.account.bytes()) == first)
}

fn check_everyone_has_everything(sim: &GroupSim, n: usize, winner: usize) {
    for (i, pc) in sim.pcs.iter().enumerate() {
        let text = String::from_utf8_lossy(&pc.account.bytes()).into_owned();
        for j in 0..n {
            assert!(text.contains(&toon(j)), "PC {i} lacks {}", toon(j));
            assert!(
                text.contains(&format!("Post from PC {j}")),
                "PC {i} lacks PC {j}'s post"
            );
        }
        assert!(
            text.contains(&format!("Edited by PC {winner}\"")),
            "PC {i} does not hold the latest edit (PC {winner}'s)"
        );
    }
    assert!(converged(sim), "the PCs hold different data");
}

#[test]
fn twenty_pcs_through_a_faulty_carrier_end_with_everyones_data_and_then_rest() {
    let n = 20;
    let started = Instant::now();
    let files: Vec<Vec<u8>> = (0..n).map(|i| pc_file(i, 1)).collect();
    let carrier = Carrier {
        min_delay: 500,
        max_delay: 20_000,
        late: 0.005,
        twice: 0.05,
        lost: 0.002,
        conflict: 0.02,
    };
    let mut sim = GroupSim::new(files, Target::SharedData, carrier, 0x5eed);
    let t0 = sim.now();

    // A few PCs stop and start again while the first syncs run.
    sim.run_until(t0 + 2 * 60_000);
    for i in [3, 11, 17] {
        sim.stop(i);
    }
    sim.run_until(t0 + 20 * 60_000);
    for i in [3, 11, 17] {
        sim.start(i, 99 + i as u64);
    }
    // A player logs out on PC 7 with a later edit of their own.
    sim.run_until(t0 + 30 * 60_000);
    let mut edited = String::from_utf8(sim.pcs[7].account.bytes()).unwrap();
    edited = edited.replacen(
        "\t\t[\"roster\"] = {\n",
        "\t\t[\"roster\"] = {\n\t\t\t[\"Latecomer-Eonar\"] = {\n\t\t\t\t[\"deleted\"] = false,\n\
         \t\t\t\t[\"tableType\"] = \"roster\",\n\t\t\t\t[\"lastUpdated\"] = \"20250301000000\",\n\
         \t\t\t\t[\"id\"] = \"Latecomer-Eonar\",\n\t\t\t\t[\"data\"] = {\n\
         \t\t\t\t\t[\"name\"] = \"Latecomer-Eonar\",\n\t\t\t\t},\n\t\t\t},\n",
        1,
    );
    sim.game_save(7, edited.into_bytes());

    run_to_rest(&mut sim, 72 * HOUR);
    let took = sim.now() - t0;
    assert!(sim.is_quiet(), "the group never came to rest");
    assert!(sim.failures.is_empty(), "{:#?}", sim.failures);
    check_everyone_has_everything(&sim, n, n - 1);
    for (i, pc) in sim.pcs.iter().enumerate() {
        let text = String::from_utf8_lossy(&pc.account.bytes()).into_owned();
        assert!(
            text.contains("Latecomer-Eonar"),
            "PC {i} lacks the late save"
        );
    }
    let writes = sim.writes();
    for (i, pc) in sim.pcs.iter().enumerate() {
        assert_eq!(
            pc.account.pointless_writes(),
            0,
            "PC {i} wrote its own bytes again"
        );
    }
    eprintln!(
        "20 PCs at rest after {:.1} virtual minutes, {} file deliveries, {} account writes \
         ({:.1} s of real time)",
        took as f64 / 60_000.0,
        sim.deliveries,
        writes.iter().sum::<u64>(),
        started.elapsed().as_secs_f64()
    );

    // At rest: two hours of heartbeats and cleaning write no account file, and the shared folder
    // does not grow.
    let files_before: usize = sim.pcs.iter().map(|p| p.folder_files()).sum();
    let end = sim.now() + 2 * HOUR;
    sim.run_until(end);
    assert_eq!(sim.writes(), writes, "an idle group wrote account files");
    let files_after: usize = sim.pcs.iter().map(|p| p.folder_files()).sum();
    assert!(
        files_after <= files_before.max(n * n),
        "the shared folder grew while idle: {files_before} -> {files_after} files"
    );
}

#[test]
fn a_group_into_shared_data_remote_gives_every_pc_the_others_data() {
    let n = 5;
    let files: Vec<Vec<u8>> = (0..n).map(|i| pc_file(i, 2)).collect();
    let mut sim = GroupSim::new(files, Target::SharedDataRemote, Carrier::default(), 7);
    let t0 = sim.now();
    sim.run_until(t0 + 6 * HOUR);
    assert!(sim.is_quiet());
    assert!(sim.failures.is_empty(), "{:#?}", sim.failures);
    for (i, pc) in sim.pcs.iter().enumerate() {
        let doc_bytes = pc.account.bytes();
        let doc = parse_with(&doc_bytes, &parse_options()).unwrap();
        let remote = shared_table(&doc, "sharedDataRemote").unwrap().unwrap();
        let roster =
            String::from_utf8_lossy(&canonical(remote.get_str("roster").unwrap())).into_owned();
        for j in (0..n).filter(|j| *j != i) {
            assert!(
                roster.contains(&toon(j)),
                "PC {i}'s sharedDataRemote lacks {}",
                toon(j)
            );
        }
        // Its own data stays its own.
        let own = shared_table(&doc, "sharedData").unwrap().unwrap();
        let own = String::from_utf8_lossy(&canonical(own.get_str("roster").unwrap())).into_owned();
        for j in (0..n).filter(|j| *j != i) {
            assert!(
                !own.contains(&toon(j)),
                "PC {i}'s own roster got {}",
                toon(j)
            );
        }
    }
}
