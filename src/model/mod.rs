//! GuildHelper's data: the names of its tables and the checks `validate` runs on them.

pub mod check;

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
