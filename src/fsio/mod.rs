//! The file system: finding SavedVariables files and accounts, writing safely.

pub mod files;
