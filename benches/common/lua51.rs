//! Lua 5.1.5 (vendored by mlua) loading a file as the game does: compiled and run in an empty
//! environment. Shared by the benchmarks.

/// Whether `bytes` load as a chunk in `lua`, in an environment of their own.
pub fn load(lua: &mlua::Lua, bytes: &[u8]) -> bool {
    let Ok(env) = lua.create_table() else {
        return false;
    };
    lua.load(bytes)
        .set_mode(mlua::chunk::ChunkMode::Text)
        .set_environment(env)
        .exec()
        .is_ok()
}
