//! GuildHelper's data: the names of its tables and the checks `validate` runs on them.

pub mod check;
pub mod json;
pub mod tables;

/// The one variable GuildHelper declares in `SavedVariables/GuildHelper.lua`.
pub const SAVED_VARIABLES: &str = "GuildHelper_SavedVariables";
/// The synced table of the account.
pub const SHARED_DATA: &str = "sharedData";
/// Where a receiver keeps what it got from others, by default.
pub const SHARED_DATA_REMOTE: &str = "sharedDataRemote";
/// File name of GuildHelper's SavedVariables.
pub const FILE_NAME: &str = "GuildHelper.lua";

/// The synced tables, in sync order: setup first, roster last.
pub const SYNCED_TABLES: [&str; 5] = ["setup", "news", "guildInfo", "calendar", "roster"];

/// Key paths a reader must keep to inspect or merge GuildHelper data.
pub const KEEP_PATHS: &[&[&str]] = &[
    &[SAVED_VARIABLES, SHARED_DATA],
    &[SAVED_VARIABLES, SHARED_DATA_REMOTE],
];

/// Whether a file is GuildHelper's SavedVariables file, by name.
pub fn is_guildhelper_file(path: &std::path::Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.eq_ignore_ascii_case(FILE_NAME))
}

/// The table a receiver merges into.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum Target {
    /// `sharedDataRemote`: a copy beside the account's own data (the default).
    #[default]
    #[serde(rename = "sharedDataRemote")]
    SharedDataRemote,
    /// `sharedData`: the account's own data.
    #[serde(rename = "sharedData")]
    SharedData,
}

impl Target {
    pub fn key(self) -> &'static str {
        match self {
            Target::SharedDataRemote => SHARED_DATA_REMOTE,
            Target::SharedData => SHARED_DATA,
        }
    }

    pub fn parse(name: &str) -> Option<Target> {
        [Target::SharedDataRemote, Target::SharedData]
            .into_iter()
            .find(|t| t.key() == name)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// Why GuildHelper data could not be taken from a parsed file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("`{SAVED_VARIABLES}` is not defined in this file")]
    NoSavedVariables,
    #[error("`{0}` is not a table")]
    NotATable(String),
    #[error("`{0}` was not kept by the parser")]
    NotKept(String),
}

/// Parse options that keep exactly what merging needs (`sharedData` and `sharedDataRemote`).
pub fn parse_options() -> crate::lua::ParseOptions<'static> {
    crate::lua::ParseOptions {
        keep: crate::lua::Keep::Paths(KEEP_PATHS),
        ..Default::default()
    }
}

/// The node of the table `GuildHelper_SavedVariables[name]`; `None` when the key is absent
/// (or nil). The same checks as [`shared_table`], without building the value.
pub fn shared_node(
    doc: &crate::lua::Document<'_>,
    name: &str,
) -> Result<Option<crate::lua::Node>, ModelError> {
    use crate::lua::Kind;
    let global = doc
        .global(SAVED_VARIABLES)
        .ok_or(ModelError::NoSavedVariables)?;
    if !doc.is_table(global.value) {
        return Err(ModelError::NotATable(SAVED_VARIABLES.to_string()));
    }
    let Some(field) = doc.get(global.value, name.as_bytes()) else {
        return Ok(None);
    };
    let path = || format!("{SAVED_VARIABLES}.{name}");
    match field.value.kind {
        Kind::Table { .. } => Ok(Some(field.value)),
        Kind::Nil => Ok(None),
        Kind::Skipped | Kind::Deferred => Err(ModelError::NotKept(path())),
        _ => Err(ModelError::NotATable(path())),
    }
}

/// The table `GuildHelper_SavedVariables[name]` as a value; `None` when the key is absent.
pub fn shared_table(
    doc: &crate::lua::Document<'_>,
    name: &str,
) -> Result<Option<crate::lua::Table>, ModelError> {
    let Some(node) = shared_node(doc, name)? else {
        return Ok(None);
    };
    match doc.value(node) {
        Ok(Some(crate::lua::LuaValue::Table(t))) => Ok(Some(t)),
        _ => Err(ModelError::NotKept(format!("{SAVED_VARIABLES}.{name}"))),
    }
}
