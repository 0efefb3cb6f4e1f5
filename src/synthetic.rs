//! Synthetic `GuildHelper.lua` files of any size, for benchmarks and large-file tests.
//!
//! The files look like the ones players have: a guild's shared data (a roster of about two
//! thousand toons in both record shapes, news, guild info, calendar, setup, metadata) and a
//! `log` that grows forever and makes up most of a large file. Output is deterministic.
//!
//! Log lines repeat from a pool of distinct lines so that even a 100 MB file stays under Lua
//! 5.1's limit of 262,143 distinct constants (the reference loader must be able to load it).

use crate::lua::{Indent, Layout};

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'s>(&mut self, items: &[&'s str]) -> &'s str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Distinct log lines; the rest of the log repeats them.
const LOG_POOL: u64 = 150_000;

const CLASSES: &[&str] = &[
    "Mage", "Druid", "Warrior", "Priest", "Rogue", "Hunter", "Shaman", "Paladin",
];
const RANKS: &[&str] = &["Member", "Officer", "Raid Leader", "Alt", "Guild Master"];
const REALMS: &[&str] = &[
    "Eonar",
    "Velen",
    "Alleria",
    "Skywall",
    "Tarren Mill",
    "Argent Dawn",
];

struct Out {
    buf: String,
    layout: Layout,
}

impl Out {
    fn line(&mut self, depth: usize, text: &str) {
        if self.layout.indent == Indent::Tabs {
            for _ in 0..depth {
                self.buf.push('\t');
            }
        }
        self.buf.push_str(text);
        self.buf
            .push_str(std::str::from_utf8(self.layout.line_ending.as_bytes()).unwrap_or("\n"));
    }

    fn item(&mut self, depth: usize, value: &str, index: usize) {
        if self.layout.indent == Indent::Tabs {
            self.line(depth, &format!("{value}, -- [{index}]"));
        } else {
            self.line(depth, &format!("{value},"));
        }
    }

    fn open(&mut self, depth: usize, key: &str) {
        self.line(depth, &format!("[\"{key}\"] = {{"));
    }

    fn close(&mut self, depth: usize) {
        self.line(depth, "},");
    }

    fn field(&mut self, depth: usize, key: &str, value: &str) {
        self.line(depth, &format!("[\"{key}\"] = {value},"));
    }
}

fn stamp(rng: &mut Rng) -> String {
    format!(
        "2024{:02}{:02}{:02}{:02}{:02}",
        1 + rng.below(12),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60)
    )
}

fn toon(i: u64, rng: &mut Rng) -> String {
    format!("Toon{i}-{}", rng.pick(REALMS).replace(' ', ""))
}

fn log_line(n: u64) -> String {
    // Names, stamps and numbers vary across the whole line, as in real sync logs. (Lines that
    // differ only in a few digits, such as `Skipping entry <18 digits> ...`, defeat Lua 5.1's
    // sampled string hash; docs/BENCHMARKS.md measures that case separately.)
    let mut rng = Rng(n.wrapping_mul(7919) ^ 0xA5A5);
    let who = toon(rng.below(5000), &mut rng);
    let other = toon(rng.below(5000), &mut rng);
    match n % 5 {
        0 => format!(
            "Received chunk {}/{} for table roster from {who}: {{\\\"{other}\\\":{{\\\"pt_level\\\":{},\\\"pt_class\\\":\\\"{}\\\",\\\"lastUpdated\\\":\\\"{}\\\"}}}}",
            1 + rng.below(9),
            9 + rng.below(12),
            10 + rng.below(71),
            rng.pick(CLASSES),
            stamp(&mut rng)
        ),
        1 => format!(
            "{} Sending SAVE_USER data to {who} ({} bytes)",
            stamp(&mut rng),
            1 + rng.below(400)
        ),
        2 => format!(
            "Skipping entry {who} with matching lastUpdated {}.",
            stamp(&mut rng)
        ),
        3 => format!(
            "CompareMetadata {who}: updatesNeededLocally={{{other}}}, updatesNeededRemotely={{{}}}",
            toon(rng.below(5000), &mut rng)
        ),
        _ => format!(
            "{} data synced with {who} at {}: {} added, {} updated.",
            ["news", "roster", "guildInfo", "calendar"][rng.below(4) as usize],
            stamp(&mut rng),
            rng.below(50),
            rng.below(50)
        ),
    }
}

/// A `GuildHelper.lua` of about `target_bytes` bytes in `layout`.
pub fn guildhelper_file(target_bytes: usize, layout: Layout) -> Vec<u8> {
    let mut rng = Rng(0x5EED);
    let mut o = Out {
        buf: String::with_capacity(target_bytes + 4096),
        layout,
    };
    o.line(0, "");
    o.line(0, "GuildHelper_SavedVariables = {");
    o.open(1, "sharedData");

    o.open(2, "roster");
    // Guild-sized: up to 2000 toons and 200 entries per table, fewer in small files.
    let toon_count = (target_bytes / 2500).clamp(10, 2000) as u64;
    let entry_count = (target_bytes / 25_000).clamp(5, 200) as u64;
    let toons: Vec<String> = (0..toon_count).map(|i| toon(i, &mut rng)).collect();
    for (i, name) in toons.iter().enumerate() {
        o.open(3, name);
        let class = rng.pick(CLASSES);
        let level = 10 + rng.below(71);
        if i % 2 == 0 {
            o.field(4, "pt_name", &format!("\"{name}\""));
            o.field(4, "pt_level", &level.to_string());
            o.field(4, "pt_class", &format!("\"{class}\""));
            o.field(4, "pt_rank", &format!("\"{}\"", rng.pick(RANKS)));
            o.field(
                4,
                "pt_itemLevel",
                &format!("{}.{}", 500 + rng.below(140), rng.below(1000)),
            );
            o.open(4, "pt_roles");
            o.item(5, "\"DPS\"", 1);
            o.close(4);
            o.field(4, "lastUpdated", &format!("\"{}\"", stamp(&mut rng)));
            o.field(4, "deleted", "false");
        } else {
            o.field(4, "deleted", "false");
            o.field(4, "tableType", "\"roster\"");
            o.field(4, "lastUpdated", &format!("\"{}\"", stamp(&mut rng)));
            o.field(4, "guildName", "\"No Rest For The Wicked-Eonar\"");
            o.field(4, "id", &format!("\"{name}\""));
            o.open(4, "data");
            o.field(5, "name", &format!("\"{name}\""));
            o.field(5, "class", &format!("\"{class}\""));
            o.field(5, "level", &format!("\"{level}\""));
            o.field(5, "rank", &format!("\"{}\"", rng.pick(RANKS)));
            o.open(5, "roles");
            o.item(6, "\"Tank\"", 1);
            o.item(6, "\"DPS\"", 2);
            o.close(5);
            o.close(4);
        }
        o.close(3);
    }
    o.close(2);

    for table in ["news", "guildInfo", "calendar"] {
        o.open(2, table);
        for i in 0..entry_count {
            let id = format!("2024{:014}", i * 7919 + 1);
            o.open(3, &id);
            o.field(4, "deleted", "false");
            o.field(4, "tableType", &format!("\"{table}\""));
            o.field(4, "lastUpdated", &format!("\"{}\"", stamp(&mut rng)));
            o.field(4, "guildName", "\"No Rest For The Wicked-Eonar\"");
            o.field(4, "id", &format!("\"{id}\""));
            o.open(4, "data");
            o.field(5, "title", &format!("\"Raid night {i}\""));
            o.field(5, "category", "\"Events\"");
            o.field(5, "date", "\"2025-01-05 19:30:12\"");
            o.field(5, "content", "\"Heroic raid moves to Thursday 8pm server time.\\nBring flasks and \\\"Algari\\\" food!\"");
            o.close(4);
            o.close(3);
        }
        o.close(2);
    }
    o.open(2, "setup");
    o.open(3, "linkedGuildGroups");
    o.field(4, "lastUpdated", "\"20241130194258\"");
    o.open(4, "guilds");
    o.line(5, "{");
    o.field(6, "name", "\"No Rest For The Wicked-Eonar\"");
    o.item(5, "}", 1);
    o.close(4);
    o.close(3);
    o.close(2);
    o.close(1);

    o.open(1, "log");
    let mut n = 1usize;
    while o.buf.len() + 16 < target_bytes {
        let line = log_line(rng.below(LOG_POOL));
        o.item(2, &format!("\"{line}\""), n);
        n += 1;
    }
    o.close(1);
    o.line(0, "}");
    o.buf.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::LineEnding;
    use crate::lua::{Kind, parse};

    #[test]
    fn generated_files_parse_in_both_layouts() {
        for indent in [Indent::Tabs, Indent::Flat] {
            let layout = Layout {
                indent,
                line_ending: LineEnding::CrLf,
            };
            let file = guildhelper_file(600_000, layout);
            assert!(file.len().abs_diff(600_000) < 6_000, "{}", file.len());
            assert_eq!(Layout::detect(&file), layout);
            let doc = parse(&file).unwrap();
            let gh = doc.global("GuildHelper_SavedVariables").unwrap();
            let shared = doc.get(gh.value, b"sharedData").unwrap();
            assert!(matches!(shared.value.kind, Kind::Table { .. }));
            assert_eq!(
                doc.fields(doc.get(shared.value, b"roster").unwrap().value)
                    .len(),
                240
            );
        }
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(
            guildhelper_file(100_000, Layout::default()),
            guildhelper_file(100_000, Layout::default())
        );
    }
}
