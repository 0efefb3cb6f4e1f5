//! Typed (serde) records of GuildHelper's synced tables, in both shapes.
//!
//! The merge works on records as Lua tables (see [`super::tables`]); these types are for code
//! that wants named fields: reports, checks, tools. They are read from and written to the
//! lossless JSON of [`super::json`], so every field keeps its exact value and type: known fields
//! whose type varies in real files (`level` is `80` or `"80"`) are kept as JSON values, and every
//! field a struct does not name goes to `other` unchanged. Converting a record to a typed one
//! and back yields an equal Lua table (field order aside, which Lua does not keep either).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json::{JsonError, from_json, to_json};
use super::tables::{Entry, Part, TableName, assemble, entries};
use crate::lua::{LuaValue, Table};

/// Fields a struct does not name, with their exact values.
pub type Other = Map<String, Value>;

macro_rules! record {
    ($(#[$m:meta])* $name:ident { $($field:ident : $lua:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
        pub struct $name {
            $(
                #[serde(rename = $lua, default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<Value>,
            )*
            #[serde(flatten)]
            pub other: Other,
        }
    };
}

record!(
    /// The older roster record: `roster["Name-Realm"] = { pt_name = ..., ... }`.
    FlatRosterRecord {
        name: "pt_name", level: "pt_level", class: "pt_class", guild_name: "pt_guildName",
        faction: "pt_faction", rank: "pt_rank", item_level: "pt_itemLevel", roles: "pt_roles",
        interests: "pt_interests", professions: "pt_professions", guild_join_date: "pt_guildJoinDate",
        main_character: "gb_mainCharacter", birthdate: "gb_birthdate", battletag: "gb_battletag",
        last_updated: "lastUpdated", deleted: "deleted",
    }
);

record!(
    /// `data` of a roster envelope.
    RosterData {
        name: "name", class: "class", level: "level", rank: "rank", item_level: "itemLevel",
        battletag: "battletag", roles: "roles", guild_join_date: "guildJoinDate",
        professions: "professions", main_character: "mainCharacter", interests: "interests",
        birthdate: "birthdate", faction: "faction",
    }
);

record!(
    /// An older news, guild-info or calendar item (`eventDate` for calendar).
    Post {
        id: "id", title: "title", category: "category", date: "date", event_date: "eventDate",
        content: "content", guild_name: "guildName",
    }
);

record!(
    /// `data` of a news, guild-info or calendar envelope.
    PostData {
        title: "title", category: "category", date: "date", event_date: "eventDate",
        content: "content",
    }
);

record!(
    /// The older setup record `linkedGuildGroups`.
    LinkedGuildGroups { last_updated: "lastUpdated", guilds: "guilds" }
);

record!(
    /// `data` of a setup envelope.
    SetupData { guilds: "guilds", chat: "chat" }
);

record!(
    /// One entry of `sharedData.metadata`.
    MetadataEntry {
        id: "id", table_type: "tableType", guild_name: "guildName", last_updated: "lastUpdated",
        deleted: "deleted",
    }
);

/// The newer record shape: common fields and a table-specific `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<D> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(rename = "tableType", default, skip_serializing_if = "Option::is_none")]
    pub table_type: Option<Value>,
    #[serde(rename = "guildName", default, skip_serializing_if = "Option::is_none")]
    pub guild_name: Option<Value>,
    #[serde(
        rename = "lastUpdated",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_updated: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Value>,
    pub data: D,
    #[serde(flatten)]
    pub other: Other,
}

/// A record of a synced table, typed by table and shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    FlatRoster(Box<FlatRosterRecord>),
    Roster(Box<Envelope<RosterData>>),
    FlatPost(Box<Post>),
    Post(Box<Envelope<PostData>>),
    LinkedGuildGroups(Box<LinkedGuildGroups>),
    Setup(Box<Envelope<SetupData>>),
    /// Not a table, or a table of no known shape: kept as it is.
    Other(Value),
}

fn typed<T: DeserializeOwned>(json: &Value) -> Option<T> {
    serde_json::from_value(json.clone()).ok()
}

fn has_data_table(json: &Value) -> bool {
    json.get("data").is_some_and(Value::is_object)
}

impl Record {
    /// Types one record of `table` (`key`: its key, when it is keyed).
    pub fn from_lua(
        table: TableName,
        key: Option<&str>,
        value: &LuaValue,
    ) -> Result<Record, JsonError> {
        let json = to_json(value)?;
        let envelope = has_data_table(&json);
        let record = match (table, envelope) {
            (_, _) if !json.is_object() => None,
            (TableName::Roster, true) => typed(&json).map(|r| Record::Roster(Box::new(r))),
            (TableName::Roster, false) => typed(&json).map(|r| Record::FlatRoster(Box::new(r))),
            (TableName::Setup, true) => typed(&json).map(|r| Record::Setup(Box::new(r))),
            (TableName::Setup, false) if key == Some("linkedGuildGroups") => {
                typed(&json).map(|r| Record::LinkedGuildGroups(Box::new(r)))
            }
            (TableName::Setup, false) => None,
            (_, true) => typed(&json).map(|r| Record::Post(Box::new(r))),
            (_, false) => typed(&json).map(|r| Record::FlatPost(Box::new(r))),
        };
        Ok(record.unwrap_or(Record::Other(json)))
    }

    /// The record as a Lua table again.
    pub fn to_lua(&self) -> Result<LuaValue, JsonError> {
        let json = match self {
            Record::FlatRoster(r) => serde_json::to_value(r),
            Record::Roster(r) => serde_json::to_value(r),
            Record::FlatPost(r) => serde_json::to_value(r),
            Record::Post(r) => serde_json::to_value(r),
            Record::LinkedGuildGroups(r) => serde_json::to_value(r),
            Record::Setup(r) => serde_json::to_value(r),
            Record::Other(v) => Ok(v.clone()),
        }
        .map_err(|e| JsonError::Syntax(e.to_string()))?;
        from_json(&json)
    }
}

/// A synced table as typed records, each with its place (array part or key).
#[derive(Debug, Clone, PartialEq)]
pub struct TypedTable {
    pub name: TableName,
    pub records: Vec<(Part, Record)>,
}

impl TypedTable {
    pub fn from_table(name: TableName, table: &Table) -> Result<TypedTable, JsonError> {
        let records = entries(table)
            .into_iter()
            .map(|e| {
                let key = match &e.part {
                    Part::Keyed(k) => k.as_str().and_then(|s| std::str::from_utf8(s).ok()),
                    Part::Array => None,
                };
                Ok((e.part.clone(), Record::from_lua(name, key, &e.value)?))
            })
            .collect::<Result<_, JsonError>>()?;
        Ok(TypedTable { name, records })
    }

    pub fn to_table(&self) -> Result<Table, JsonError> {
        let entries = self
            .records
            .iter()
            .map(|(part, r)| {
                Ok(Entry {
                    part: part.clone(),
                    value: r.to_lua()?,
                })
            })
            .collect::<Result<Vec<_>, JsonError>>()?;
        Ok(assemble(entries))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::lua::{Key, Number};

    fn scalar() -> impl Strategy<Value = LuaValue> {
        prop_oneof![
            any::<bool>().prop_map(LuaValue::Bool),
            (0u32..1000)
                .prop_map(|n| LuaValue::Number(Number::with_text(f64::from(n), n.to_string()))),
            Just(LuaValue::Number(Number::with_text(633.5, "633.50"))),
            "[a-zA-Z0-9 #$]{0,8}".prop_map(LuaValue::str),
            prop::collection::vec(any::<u8>(), 0..6).prop_map(LuaValue::Str),
        ]
    }

    fn field_name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "id",
                "lastUpdated",
                "deleted",
                "guildName",
                "tableType",
                "title",
                "date",
                "pt_name",
                "pt_level",
                "pt_roles",
                "name",
                "level",
                "guilds",
                "$odd",
                "#odd",
            ])
            .prop_map(str::to_string),
            "[a-z]{1,6}",
        ]
    }

    fn record(envelope: bool) -> impl Strategy<Value = LuaValue> {
        (
            prop::collection::vec((field_name(), scalar()), 0..8),
            prop::collection::vec((field_name(), scalar()), 0..5),
        )
            .prop_map(move |(fields, data)| {
                let mut t = Table::from_entries(fields.into_iter().map(|(k, v)| (Key::str(k), v)));
                if envelope {
                    let d = Table::from_entries(data.into_iter().map(|(k, v)| (Key::str(k), v)));
                    t.insert(Key::str("data"), LuaValue::Table(d));
                }
                LuaValue::Table(t)
            })
    }

    proptest! {
        #[test]
        fn records_round_trip_through_their_types(
            table in prop::sample::select(TableName::ALL.to_vec()),
            key in prop::option::of(prop::sample::select(vec!["linkedGuildGroups", "x"])),
            value in any::<bool>().prop_flat_map(record),
        ) {
            let typed = Record::from_lua(table, key, &value).unwrap();
            prop_assert_eq!(typed.to_lua().unwrap(), value);
        }
    }

    #[test]
    fn sample_records_get_their_types_and_round_trip() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/WTF/Account");
        for (account, envelopes) in [("ALPHA", true), ("BRAVO", false), ("CHARLIE", false)] {
            let src =
                std::fs::read(root.join(account).join("SavedVariables/GuildHelper.lua")).unwrap();
            let doc = crate::lua::parse(&src).unwrap();
            let shared = crate::model::shared_table(&doc, "sharedData")
                .unwrap()
                .unwrap();
            for name in TableName::ALL {
                let table = shared
                    .get_str(name.as_str())
                    .and_then(LuaValue::as_table)
                    .unwrap();
                let typed = TypedTable::from_table(name, table).unwrap();
                assert_eq!(&typed.to_table().unwrap(), table, "{account} {name}");
                for (_, r) in &typed.records {
                    let ok = match r {
                        Record::Roster(_) | Record::Post(_) | Record::Setup(_) => envelopes,
                        Record::FlatRoster(_)
                        | Record::FlatPost(_)
                        | Record::LinkedGuildGroups(_) => !envelopes,
                        Record::Other(_) => false,
                    };
                    assert!(ok, "{account} {name}: {r:?}");
                }
            }
        }
        // Types are what the file says: a string level stays a string.
        let src = std::fs::read(root.join("ALPHA/SavedVariables/GuildHelper.lua")).unwrap();
        let doc = crate::lua::parse(&src).unwrap();
        let roster = crate::model::shared_table(&doc, "sharedData")
            .unwrap()
            .unwrap();
        let roster = roster
            .get_str("roster")
            .and_then(LuaValue::as_table)
            .unwrap();
        let typed = TypedTable::from_table(TableName::Roster, roster).unwrap();
        let level = typed.records.iter().find_map(|(_, r)| match r {
            Record::Roster(e) if e.id == Some(Value::String("Heretanky-Velen".into())) => {
                e.data.level.clone()
            }
            _ => None,
        });
        assert_eq!(level, Some(Value::String("80".into())));
    }
}
