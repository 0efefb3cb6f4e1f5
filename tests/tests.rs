//! Integration tests: the library against a real Lua 5.1 and full_moon, and the `svsync`
//! binary on the files in `testdata/`.

mod support;

mod addon_expectations;
mod group;
mod lua_edge_cases;
mod lua_limits;
mod lua_reference;
mod mailbox_cli;
mod merge_cli;
mod merge_samples;
mod safety_cli;
mod set_cli;
mod simulation;
mod syncthing;
mod validate_cli;
mod watch_cli;
