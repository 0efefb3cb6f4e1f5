//! The two layouts of GuildHelper's synced tables, and the conversion of records between them.
//!
//! | table | [`Layout::Older`] | [`Layout::Current`] (GuildHelper 1.0.23f) |
//! |---|---|---|
//! | roster | map toon -> flat record (`pt_*`, `gb_*`) | map toon -> envelope with `data` |
//! | news, guildInfo, calendar | array of flat posts | map id -> envelope with `data` |
//! | setup | `linkedGuildGroups = {lastUpdated, guilds}` | `["199901010000001234"]` = envelope |
//!
//! The receiver's own layout decides (see [`decide`]). Converting never drops a field: a field
//! with no place in the other layout goes into `data` under its own name (or, going back, to
//! the top level). Converting a record to the layout it already has returns it unchanged, so a
//! merged table converts to itself and merging twice changes nothing.

use crate::lua::{Key, LuaValue, Table, format_number};
use crate::model::tables::{Entry, Part, Record, RecordShape, TableName, stamp_of_date};

/// The key of the linked-guild group in the current layout's `setup`.
pub const SETUP_ID: &str = "199901010000001234";
/// Its key in the older layout.
pub const LINKED_GUILD_GROUPS: &str = "linkedGuildGroups";

/// Roster fields the older layout prefixes with `gb_` (the rest take `pt_`).
const GB_FIELDS: &[&str] = &["mainCharacter", "birthdate", "battletag"];

/// Fields that stay at the top level of an envelope.
const TOP: &[&str] = &["id", "tableType", "guildName", "lastUpdated", "deleted"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Flat records; posts in arrays; `setup.linkedGuildGroups`.
    Older,
    /// Envelopes with `data`, every table a map (what GuildHelper 1.0.23f reads).
    Current,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Older => "older",
            Layout::Current => "current",
        }
    }
}

/// The layout a table is in: current if any record is an envelope, older if it has records
/// but none is; `None` for a table without records.
pub fn layout_of(table: TableName, t: &Table) -> Option<Layout> {
    layout_of_values(table, t.iter().map(|(_, v)| std::borrow::Cow::Borrowed(v)))
}

/// [`layout_of`] for a table's values given one at a time (they can be built one at a time:
/// the first envelope decides).
pub fn layout_of_values<'v>(
    table: TableName,
    values: impl IntoIterator<Item = std::borrow::Cow<'v, LuaValue>>,
) -> Option<Layout> {
    let mut any = false;
    for v in values {
        if let LuaValue::Table(r) = v.as_ref() {
            any = true;
            if Record::new(table, r).shape() == RecordShape::Envelope {
                return Some(Layout::Current);
            }
        }
    }
    any.then_some(Layout::Older)
}

/// The layout of the result: the receiver's own `sharedData` table decides; if it has none,
/// the target table's; only if neither has records, the source's; current when nothing says.
pub fn decide(
    table: TableName,
    own: Option<&Table>,
    target: Option<&Table>,
    source: Option<&Table>,
) -> Layout {
    [own, target, source]
        .into_iter()
        .flatten()
        .find_map(|t| layout_of(table, t))
        .unwrap_or(Layout::Current)
}

fn s(text: &str) -> LuaValue {
    LuaValue::str(text)
}

fn is_top(k: &Key) -> bool {
    k.as_str()
        .is_some_and(|name| TOP.iter().any(|t| t.as_bytes() == name))
}

/// Converts one entry (record and place) to `layout`. An entry already in that layout, or not
/// a record, comes back unchanged.
/// Whether [`convert`] rebuilds this record (it is in the other layout); otherwise at most its
/// place changes.
pub fn converts(table: TableName, value: &LuaValue, layout: Layout) -> bool {
    let LuaValue::Table(record) = value else {
        return false;
    };
    matches!(
        (layout, Record::new(table, record).shape()),
        (Layout::Current, RecordShape::Flat) | (Layout::Older, RecordShape::Envelope)
    )
}

/// Whether a record of this shape, under this part, is already what [`convert`] makes of it:
/// in the layout, and staying under the same part. (Records for which this is false may still
/// convert to themselves; they are then only read as values.)
pub fn stays_in_place(table: TableName, part: &Part, shape: RecordShape, layout: Layout) -> bool {
    let is_setup_key =
        |k: &Key, name: &str| table == TableName::Setup && k.as_str() == Some(name.as_bytes());
    match (layout, shape, part) {
        (Layout::Current, RecordShape::Envelope, Part::Keyed(k)) => {
            !is_setup_key(k, LINKED_GUILD_GROUPS)
        }
        // A post in the array part moves under its id.
        (Layout::Current, RecordShape::Envelope, Part::Array) => !table.is_posts(),
        (Layout::Older, RecordShape::Flat, Part::Keyed(k)) => {
            !table.is_posts() && !is_setup_key(k, SETUP_ID)
        }
        (Layout::Older, RecordShape::Flat, Part::Array) => true,
        _ => false,
    }
}

pub fn convert(table: TableName, entry: Entry, layout: Layout) -> Entry {
    let Entry { part, value } = entry;
    let LuaValue::Table(record) = value else {
        return Entry { part, value };
    };
    let shape = Record::new(table, &record).shape();
    let (part, record) = match (layout, shape) {
        (Layout::Current, RecordShape::Flat) => {
            let key = current_key(table, &part, &record);
            let env = to_envelope(table, record, key.as_ref());
            (key.map_or(part, Part::Keyed), env)
        }
        (Layout::Older, RecordShape::Envelope) => {
            let key = match &part {
                Part::Keyed(k) => crate::model::tables::key_identity(k),
                Part::Array => None,
            };
            let mut flat = to_flat(table, record);
            // A post keyed by id, moved to the array, keeps its identity in `id`.
            if let Some(k) = key.filter(|_| flat.get_str("id").is_none() && table.is_posts()) {
                flat.insert(Key::str("id"), LuaValue::Str(k.into()));
            }
            (older_part(table, part), flat)
        }
        // The record is in the layout already; only a post's place may change.
        (Layout::Current, RecordShape::Envelope) => {
            let key = current_key(table, &part, &record);
            (key.map_or(part, Part::Keyed), record)
        }
        (Layout::Older, RecordShape::Flat) => (older_part(table, part), record),
    };
    let mut record = record;
    record.shrink_to_fit();
    Entry {
        part,
        value: LuaValue::Table(record),
    }
}

/// Where a record sits in the current layout: posts keyed by id; the linked-guild group under
/// [`SETUP_ID`]; everything else under its key. `None`: it cannot be keyed (no id) and stays.
fn current_key(table: TableName, part: &Part, record: &Table) -> Option<Key> {
    match (table, part) {
        (TableName::Setup, Part::Keyed(k))
            if k.as_str() == Some(LINKED_GUILD_GROUPS.as_bytes()) =>
        {
            Some(Key::str(SETUP_ID))
        }
        (_, Part::Keyed(k)) => Some(k.clone()),
        (TableName::News | TableName::GuildInfo | TableName::Calendar, Part::Array) => {
            Record::new(table, record).id_field().map(Key::str)
        }
        _ => None,
    }
}

/// Where a record sits in the older layout: posts in the array part; the linked-guild group
/// under `linkedGuildGroups`; everything else where it was.
fn older_part(table: TableName, part: Part) -> Part {
    match (table, part) {
        (TableName::News | TableName::GuildInfo | TableName::Calendar, _) => Part::Array,
        (TableName::Setup, Part::Keyed(k)) if k.as_str() == Some(SETUP_ID.as_bytes()) => {
            Part::Keyed(Key::str(LINKED_GUILD_GROUPS))
        }
        (_, part) => part,
    }
}

/// An older flat record as an envelope.
fn to_envelope(table: TableName, record: Table, key: Option<&Key>) -> Table {
    let mut top = Table::new();
    let mut data = Table::new();
    // A field of the flat record that the envelope keeps at the top, and where it comes from.
    let mut guild_from_pt: Option<LuaValue> = None;
    for (k, v) in record.into_entries() {
        if is_top(&k) {
            top.insert(k, v);
            continue;
        }
        let name = k.as_str().map(|b| b.to_vec());
        match (table, name.as_deref()) {
            (TableName::Roster, Some(b"pt_guildName")) => guild_from_pt = Some(v),
            (TableName::Roster, Some(n)) if n.starts_with(b"pt_") || n.starts_with(b"gb_") => {
                data.insert(Key::str(&n[3..]), v);
            }
            _ => data.insert(k, v),
        }
    }
    if let Some(g) = guild_from_pt {
        if top.get_str("guildName").is_none() {
            top.insert(Key::str("guildName"), g);
        } else {
            data.insert(Key::str("pt_guildName"), g);
        }
    }
    let mut env = Table::new();
    let id = top.get_str("id").cloned().or_else(|| match key {
        Some(Key::Str(k)) => Some(LuaValue::Str(k.clone())),
        Some(Key::Num(n)) => format_number(n.value()).ok().map(LuaValue::str),
        _ => None,
    });
    if let Some(id) = id {
        env.insert(Key::str("id"), id);
    }
    env.insert(
        Key::str("tableType"),
        top.get_str("tableType")
            .cloned()
            .unwrap_or_else(|| s(table.as_str())),
    );
    if let Some(g) = top.get_str("guildName") {
        env.insert(Key::str("guildName"), g.clone());
    }
    // Posts and the linked-guild group get the stamp the current addon needs: their date.
    let stamp = top.get_str("lastUpdated").cloned().or_else(|| {
        (table != TableName::Roster)
            .then(|| data.get_str("date").and_then(LuaValue::as_str))
            .flatten()
            .and_then(stamp_of_date)
            .map(|d| s(&d.to_string()))
    });
    if let Some(v) = stamp {
        env.insert(Key::str("lastUpdated"), v);
    }
    match top.get_str("deleted") {
        Some(v) => env.insert(Key::str("deleted"), v.clone()),
        None if table != TableName::Roster => {
            env.insert(Key::str("deleted"), LuaValue::Bool(false))
        }
        None => {}
    }
    env.insert(Key::str("data"), LuaValue::Table(data));
    env
}

/// An envelope as an older flat record.
fn to_flat(table: TableName, record: Table) -> Table {
    let mut flat = Table::new();
    let mut data = None;
    for (k, v) in record.into_entries() {
        match (k.as_str(), v) {
            (Some(b"data"), LuaValue::Table(d)) if data.is_none() => data = Some(d),
            (Some(b"guildName"), v) if table == TableName::Roster => {
                flat.insert(Key::str("pt_guildName"), v)
            }
            (_, v) => flat.insert(k, v),
        }
    }
    for (k, v) in data.unwrap_or_default().into_entries() {
        let k = match (table, k.as_str()) {
            (TableName::Roster, Some(name)) => {
                let gb = GB_FIELDS.iter().any(|f| f.as_bytes() == name);
                let mut out = if gb { b"gb_".to_vec() } else { b"pt_".to_vec() };
                out.extend_from_slice(name);
                Key::Str(out.into())
            }
            _ => k,
        };
        // A top-level field of the same name wins; the data's copy is not lost: it keeps a
        // `data_` prefix.
        if flat.get(&k).is_some() {
            if let Key::Str(name) = &k {
                let mut alt = b"data_".to_vec();
                alt.extend_from_slice(name);
                flat.insert(Key::Str(alt.into()), v);
            }
            continue;
        }
        flat.insert(k, v);
    }
    flat
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(entries: &[(&str, LuaValue)]) -> Table {
        Table::from_entries(entries.iter().map(|(k, v)| (Key::str(k), v.clone())))
    }

    /// `stays_in_place` promises what `convert` would do: nothing, in the same place.
    #[test]
    fn a_record_that_stays_in_place_converts_to_itself() {
        let flat = t(&[
            ("id", s("20240101000000001")),
            ("lastUpdated", s("20240101000000")),
        ]);
        let envelope = t(&[
            ("id", s("20240101000000001")),
            ("data", LuaValue::Table(flat.clone())),
        ]);
        let parts = [
            Part::Array,
            Part::Keyed(Key::str("20240101000000001")),
            Part::Keyed(Key::str(SETUP_ID)),
            Part::Keyed(Key::str(LINKED_GUILD_GROUPS)),
        ];
        let mut stayed = 0;
        for table in TableName::ALL {
            for layout in [Layout::Current, Layout::Older] {
                for record in [&flat, &envelope] {
                    for part in &parts {
                        let shape = Record::new(table, record).shape();
                        if !stays_in_place(table, part, shape, layout) {
                            continue;
                        }
                        stayed += 1;
                        let value = LuaValue::Table(record.clone());
                        assert!(!converts(table, &value, layout), "{table:?} {layout:?}");
                        let entry = Entry {
                            part: part.clone(),
                            value: value.clone(),
                        };
                        let e = convert(table, entry, layout);
                        assert_eq!((&e.part, &e.value), (part, &value), "{table:?} {layout:?}");
                    }
                }
            }
        }
        // Both layouts, several parts, every table.
        assert!(stayed >= 20, "{stayed}");
    }

    fn flat_roster() -> Table {
        t(&[
            ("pt_name", s("Heretanky-Velen")),
            ("pt_level", s("80")),
            ("gb_battletag", s("FatherRahl#1596")),
            ("pt_guildName", s("No Rest For The Wicked-Eonar")),
            ("lastUpdated", s("20241215000000")),
            ("deleted", LuaValue::Bool(false)),
            ("pt_spec", s("Guardian")),
        ])
    }

    fn field<'a>(r: &'a Table, path: &[&str]) -> Option<&'a LuaValue> {
        let (last, parents) = path.split_last()?;
        let mut t = r;
        for p in parents {
            t = t.get_str(p)?.as_table()?;
        }
        t.get_str(last)
    }

    #[test]
    fn a_flat_roster_record_becomes_an_envelope_and_back() {
        let e = convert(
            TableName::Roster,
            Entry {
                part: Part::Keyed(Key::str("Heretanky-Velen")),
                value: LuaValue::Table(flat_roster()),
            },
            Layout::Current,
        );
        assert_eq!(e.part, Part::Keyed(Key::str("Heretanky-Velen")));
        let env = e.value.as_table().unwrap();
        assert_eq!(field(env, &["id"]), Some(&s("Heretanky-Velen")));
        assert_eq!(field(env, &["tableType"]), Some(&s("roster")));
        assert_eq!(
            field(env, &["guildName"]),
            Some(&s("No Rest For The Wicked-Eonar"))
        );
        assert_eq!(field(env, &["data", "level"]), Some(&s("80")));
        assert_eq!(
            field(env, &["data", "battletag"]),
            Some(&s("FatherRahl#1596"))
        );
        assert_eq!(field(env, &["data", "spec"]), Some(&s("Guardian")));
        // And back: every field of the original is there again.
        let back = convert(TableName::Roster, e.clone(), Layout::Older);
        let flat = back.value.as_table().unwrap();
        for (k, v) in flat_roster().iter() {
            assert_eq!(flat.get(k), Some(v), "{k}");
        }
        // Converting to the layout a record has changes nothing.
        assert_eq!(convert(TableName::Roster, e.clone(), Layout::Current), e);
        assert_eq!(
            convert(TableName::Roster, back.clone(), Layout::Older),
            back
        );
    }

    #[test]
    fn an_array_post_becomes_an_id_keyed_envelope_with_a_stamp() {
        let post = t(&[
            ("title", s("Welcome")),
            ("category", s("General")),
            ("id", s("202411301924102656")),
            ("date", s("2024-12-01 05:09:22")),
            ("content", s("Hello")),
            ("guildName", s("G-Eonar")),
            ("eventDate", s("2024-12-24")),
        ]);
        let e = convert(
            TableName::Calendar,
            Entry {
                part: Part::Array,
                value: LuaValue::Table(post.clone()),
            },
            Layout::Current,
        );
        assert_eq!(e.part, Part::Keyed(Key::str("202411301924102656")));
        let env = e.value.as_table().unwrap();
        assert_eq!(field(env, &["lastUpdated"]), Some(&s("20241201050922")));
        assert_eq!(field(env, &["deleted"]), Some(&LuaValue::Bool(false)));
        assert_eq!(field(env, &["tableType"]), Some(&s("calendar")));
        assert_eq!(field(env, &["data", "eventDate"]), Some(&s("2024-12-24")));
        assert_eq!(field(env, &["data", "title"]), Some(&s("Welcome")));
        let back = convert(TableName::Calendar, e, Layout::Older);
        assert_eq!(back.part, Part::Array);
        let flat = back.value.as_table().unwrap();
        for (k, v) in post.iter() {
            assert_eq!(flat.get(k), Some(v), "{k}");
        }
    }

    #[test]
    fn the_linked_guild_group_moves_between_its_two_keys() {
        let guilds = LuaValue::Table(Table::array([LuaValue::Table(t(&[("name", s("G-A"))]))]));
        let older = t(&[
            ("lastUpdated", s("20241130194258")),
            ("guilds", guilds.clone()),
        ]);
        let e = convert(
            TableName::Setup,
            Entry {
                part: Part::Keyed(Key::str(LINKED_GUILD_GROUPS)),
                value: LuaValue::Table(older),
            },
            Layout::Current,
        );
        assert_eq!(e.part, Part::Keyed(Key::str(SETUP_ID)));
        let env = e.value.as_table().unwrap();
        assert_eq!(field(env, &["id"]), Some(&s(SETUP_ID)));
        assert_eq!(field(env, &["data", "guilds"]), Some(&guilds));
        assert_eq!(field(env, &["lastUpdated"]), Some(&s("20241130194258")));
        let back = convert(TableName::Setup, e, Layout::Older);
        assert_eq!(back.part, Part::Keyed(Key::str(LINKED_GUILD_GROUPS)));
        assert_eq!(
            field(back.value.as_table().unwrap(), &["guilds"]),
            Some(&guilds)
        );
    }

    #[test]
    fn the_receivers_own_table_decides_the_layout() {
        let env = t(&[("data", LuaValue::Table(Table::new()))]);
        let current = Table::from_entries([(Key::str("x"), LuaValue::Table(env))]);
        let older = Table::from_entries([(Key::str("x"), LuaValue::Table(flat_roster()))]);
        let empty = Table::new();
        let r = TableName::Roster;
        assert_eq!(
            decide(r, Some(&older), Some(&current), Some(&current)),
            Layout::Older
        );
        assert_eq!(
            decide(r, Some(&empty), Some(&current), Some(&older)),
            Layout::Current
        );
        assert_eq!(decide(r, None, None, Some(&older)), Layout::Older);
        assert_eq!(decide(r, None, None, None), Layout::Current);
    }
}
