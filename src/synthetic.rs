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

/// Stamps come from a pool (as real edits cluster in time), which keeps a 100,000-member file
/// under Lua 5.1's limit of distinct constants.
fn stamp(rng: &mut Rng) -> String {
    let n = rng.below(20_000);
    format!(
        "2024{:02}{:02}{:02}{:02}{:02}",
        1 + n % 12,
        1 + (n / 12) % 28,
        (n / 336) % 24,
        (n * 7) % 60,
        (n * 13) % 60
    )
}

/// Toon names depend only on their number, so every generated file names the same guild.
fn toon(i: u64) -> String {
    format!(
        "Toon{i}-{}",
        REALMS[(i % REALMS.len() as u64) as usize].replace(' ', "")
    )
}

/// One record as the addon's JSON payloads carry it, escaped as a Lua string holds it.
fn json_record(rng: &mut Rng, table: &str) -> String {
    let id = match table {
        "roster" => toon(rng.below(5000)),
        _ => format!("2024{:014}", rng.below(200) * 7919 + 1),
    };
    format!(
        "{{\\\"{id}\\\":{{\\\"deleted\\\":false, \\\"tableType\\\":\\\"{table}\\\", \\\"lastUpdated\\\":\\\"{}\\\", \\\"guildName\\\":\\\"No Rest For The Wicked-Eonar\\\", \\\"id\\\":\\\"{id}\\\"}}}}",
        stamp(rng)
    )
}

fn log_line(n: u64) -> String {
    // As in the addon's own log: most lines record a received chunk or a reassembled table
    // with its JSON payload, full of `\"` escapes. Names, stamps and numbers vary across the
    // whole line. (Lines that differ only in a few digits, such as `Skipping entry <18 digits>
    // ...`, defeat Lua 5.1's sampled string hash; docs/BENCHMARKS.md measures that case
    // separately.)
    let mut rng = Rng(n.wrapping_mul(7919) ^ 0xA5A5);
    let who = toon(rng.below(5000));
    let table = ["news", "roster", "guildInfo", "calendar", "setup"][rng.below(5) as usize];
    match n % 10 {
        0..=4 => format!(
            "Received metadata chunk {}/{} for table {table}: {}",
            1 + rng.below(9),
            9 + rng.below(12),
            json_record(&mut rng, table)
        ),
        5 | 6 => format!(
            "Reassembled metadata for table {table} from {who}: {}",
            json_record(&mut rng, table)
        ),
        7 => format!(
            "{} Sending SAVE_USER data to {who} ({} bytes)",
            stamp(&mut rng),
            1 + rng.below(400)
        ),
        8 => format!(
            "CompareMetadata {who}: updatesNeededLocally={{{}}}, updatesNeededRemotely={{}}",
            toon(rng.below(5000))
        ),
        _ => format!(
            "{table} data synced with {who} at {}: {} added, {} updated.",
            stamp(&mut rng),
            rng.below(50),
            rng.below(50)
        ),
    }
}

/// What a generated `GuildHelper.lua` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The file's size, about: the `log` fills what the tables leave.
    pub bytes: usize,
    pub layout: Layout,
    /// Members of `sharedData.roster`.
    pub members: u64,
    /// Entries of each of news, guildInfo and calendar.
    pub entries: u64,
    /// Members of a `sharedDataRemote.roster` (none: no `sharedDataRemote`).
    pub remote_members: u64,
    /// News records appended in the array part of `news`.
    pub array_news: u64,
    /// Those records all carry one id (else each its own).
    pub array_news_share_id: bool,
    /// The `log` comes before `sharedData` (Lua writes keys in any order).
    pub log_first: bool,
    /// Varies stamps, levels and ranks between files that name the same guild.
    pub seed: u64,
}

impl Spec {
    /// A guild-sized file of about `bytes`: up to 2,000 toons and 200 entries per table, fewer
    /// in small files.
    pub fn new(bytes: usize, layout: Layout) -> Spec {
        Spec {
            bytes,
            layout,
            members: (bytes / 2500).clamp(10, 2000) as u64,
            entries: (bytes / 25_000).clamp(5, 200) as u64,
            remote_members: 0,
            array_news: 0,
            array_news_share_id: false,
            log_first: false,
            seed: 0x5EED,
        }
    }

    /// The file's bytes.
    pub fn generate(&self) -> Vec<u8> {
        let mut rng = Rng(self.seed);
        let mut o = Out {
            buf: String::with_capacity(self.bytes + 4096),
            layout: self.layout,
        };
        o.line(0, "");
        o.line(0, "GuildHelper_SavedVariables = {");
        if self.log_first {
            self.log(
                &mut o,
                &mut rng,
                self.bytes.saturating_sub(self.tables_estimate()),
            );
        }
        o.open(1, "sharedData");
        roster(&mut o, &mut rng, self.members);
        for table in ["news", "guildInfo", "calendar"] {
            o.open(2, table);
            for i in 0..self.entries {
                let id = format!("2024{:014}", i * 7919 + 1);
                post(&mut o, &mut rng, table, &id, i);
            }
            if table == "news" {
                for i in 0..self.array_news {
                    let id = if self.array_news_share_id {
                        "20240000000000000042".to_owned()
                    } else {
                        format!("2025{:014}", i)
                    };
                    o.line(3, "{");
                    post_fields(&mut o, &mut rng, table, &id, i);
                    o.item(3, "}", i as usize + 1);
                }
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
        if self.remote_members > 0 {
            o.open(1, "sharedDataRemote");
            roster(&mut o, &mut rng, self.remote_members);
            o.close(1);
        }
        if !self.log_first {
            self.log(&mut o, &mut rng, self.bytes);
        }
        o.line(0, "}");
        o.buf.into_bytes()
    }

    fn tables_estimate(&self) -> usize {
        ((self.members + self.remote_members) * 420 + (self.entries * 3 + self.array_news) * 400)
            as usize
    }

    /// The `log`, until the file holds about `until` bytes.
    fn log(&self, o: &mut Out, rng: &mut Rng, until: usize) {
        o.open(1, "log");
        let mut n = 1usize;
        while o.buf.len() + 16 < until {
            let line = log_line(rng.below(LOG_POOL));
            o.item(2, &format!("\"{line}\""), n);
            n += 1;
        }
        o.close(1);
    }
}

fn roster(o: &mut Out, rng: &mut Rng, members: u64) {
    o.open(2, "roster");
    for i in 0..members {
        let name = toon(i);
        o.open(3, &name);
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
                &format!("{}.{}", 500 + rng.below(140), rng.below(10)),
            );
            o.open(4, "pt_roles");
            o.item(5, "\"DPS\"", 1);
            o.close(4);
            o.field(4, "lastUpdated", &format!("\"{}\"", stamp(rng)));
            o.field(4, "deleted", "false");
        } else {
            o.field(4, "deleted", "false");
            o.field(4, "tableType", "\"roster\"");
            o.field(4, "lastUpdated", &format!("\"{}\"", stamp(rng)));
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
}

fn post(o: &mut Out, rng: &mut Rng, table: &str, id: &str, i: u64) {
    o.open(3, id);
    post_fields(o, rng, table, id, i);
    o.close(3);
}

fn post_fields(o: &mut Out, rng: &mut Rng, table: &str, id: &str, i: u64) {
    o.field(4, "deleted", "false");
    o.field(4, "tableType", &format!("\"{table}\""));
    o.field(4, "lastUpdated", &format!("\"{}\"", stamp(rng)));
    o.field(4, "guildName", "\"No Rest For The Wicked-Eonar\"");
    o.field(4, "id", &format!("\"{id}\""));
    o.open(4, "data");
    o.field(5, "title", &format!("\"Raid night {i}\""));
    o.field(5, "category", "\"Events\"");
    o.field(5, "date", "\"2025-01-05 19:30:12\"");
    o.field(
        5,
        "content",
        "\"Heroic raid moves to Thursday 8pm server time.\\nBring flasks and \\\"Algari\\\" food!\"",
    );
    o.close(4);
}

/// A `GuildHelper.lua` of about `target_bytes` bytes in `layout`.
pub fn guildhelper_file(target_bytes: usize, layout: Layout) -> Vec<u8> {
    Spec::new(target_bytes, layout).generate()
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
    fn specs_add_a_remote_roster_duplicates_and_a_log_first() {
        let spec = Spec {
            remote_members: 30,
            array_news: 7,
            array_news_share_id: true,
            log_first: true,
            ..Spec::new(200_000, Layout::default())
        };
        let file = spec.generate();
        let doc = parse(&file).unwrap();
        let gh = doc.global("GuildHelper_SavedVariables").unwrap();
        let fields = doc.fields(gh.value);
        let keys: Vec<_> = fields
            .iter()
            .map(|f| String::from_utf8_lossy(&doc.key_string(f).unwrap()).into_owned())
            .collect();
        assert_eq!(keys, ["log", "sharedData", "sharedDataRemote"]);
        let remote = doc.get(gh.value, b"sharedDataRemote").unwrap();
        let roster = doc.get(remote.value, b"roster").unwrap();
        assert_eq!(doc.fields(roster.value).len(), 30);
        let shared = doc.get(gh.value, b"sharedData").unwrap();
        let news = doc.get(shared.value, b"news").unwrap();
        assert_eq!(doc.fields(news.value).len() as u64, spec.entries + 7);
        // Most log lines carry a JSON payload with escaped quotes.
        let text = String::from_utf8_lossy(&file);
        let log: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().starts_with('"') && l.len() > 40)
            .collect();
        let escaped = log.iter().filter(|l| l.matches("\\\"").count() >= 10);
        assert!(escaped.count() * 10 >= log.len() * 6, "{}", log.len());
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(
            guildhelper_file(100_000, Layout::default()),
            guildhelper_file(100_000, Layout::default())
        );
    }
}
