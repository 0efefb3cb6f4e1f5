//! svsync: reads, validates, merges and writes GuildHelper's WoW SavedVariables files, moving
//! the shared guild data between two accounts through the addon's chunked, checksummed sync
//! pipeline.
//!
//! Data flows one way: file bytes -> [`lua`] values (with spans) -> typed tables -> pipeline ->
//! merge -> values -> splice -> file.

pub mod failure;
pub mod fsio;
pub mod lua;
pub mod merge;
pub mod model;
pub mod peer;
pub mod protocol;
pub mod restore;
pub mod set;
pub mod state;
pub mod status;
pub mod synthetic;
pub mod text;
pub mod time;
pub mod transport;
pub mod validate;
pub mod watch;
