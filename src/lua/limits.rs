//! The bounds of the reader, and an exact model of the limits Lua 5.1's compiler puts on a
//! data file.
//!
//! A SavedVariables file is compiled as one Lua function, so a stock Lua 5.1 refuses files that
//! nest too deeply (`chunk has too many syntax levels`), keep too many values pending in open
//! table constructors (`function or expression too complex`) or hold too many distinct strings
//! and numbers (`constant table overflow`). Accepting such a file would mean telling a player
//! that a file is fine when the game cannot load it, so the parser replays the bookkeeping of
//! `lparser.c`/`lcode.c` for the data subset: the constant table (its indices decide whether a
//! key needs a register) and the register count. The numbers were measured against Lua 5.1.5.

use std::borrow::Cow;

use rustc_hash::FxHashMap;

/// `LUAI_MAXCCALLS`: the parser's nesting budget.
pub const MAX_SYNTAX_LEVELS: u32 = 200;
/// `MAXSTACK`: registers of one function.
pub const MAX_REGISTERS: u32 = 250;
/// `MAXARG_Bx`: constants of one function.
pub const MAX_CONSTANTS: u32 = (1 << 18) - 1;
/// `MAXINDEXRK`: constants an instruction can name directly.
const MAX_INDEX_RK: u32 = 255;
/// `LFIELDS_PER_FLUSH`: array items a constructor holds in registers before storing them.
pub const FIELDS_PER_FLUSH: u32 = 50;

/// Deepest table nesting whose tables may hold values: `X = {` is depth 1, and the parse level
/// of a value inside depth `d` is `d + 2` (the chunk and the statement's expression).
pub const MAX_TABLE_DEPTH: u32 = MAX_SYNTAX_LEVELS - 2;

/// The reader's own bounds, beyond Lua's.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest file accepted; offsets are 32-bit.
    pub max_file_size: usize,
    /// Replay Lua 5.1's compiler limits (constants, registers). Nesting depth is always bounded.
    pub lua_compiler_limits: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_size: 1 << 30,
            lua_compiler_limits: true,
        }
    }
}

/// A constant of the compiled chunk: Lua keys its constant table by value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Constant<'a> {
    Str(Cow<'a, [u8]>),
    /// The bits of the number, with -0 folded into 0 (they are one table key in Lua).
    Num(u64),
    Bool(bool),
    Nil,
}

impl Constant<'_> {
    pub fn number(value: f64) -> Self {
        let value = if value == 0.0 { 0.0 } else { value };
        Constant::Num(value.to_bits())
    }
}

/// How an expression stands in the compiler when it is used (`expdesc.k`).
#[derive(Debug, Clone)]
pub(crate) enum Exp<'a> {
    /// A string: already in the constant table at this index (strings are added when parsed).
    Str(u32),
    /// A number, boolean or nil: becomes a constant (or a load) only when used.
    Lazy(Constant<'a>),
    /// A table constructor: already in a register.
    InRegister,
}

/// What went over a compiler limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    Registers,
    Constants,
}

/// Replays the constant table and register use of `lcode.c`.
pub(crate) struct Codegen<'a> {
    enabled: bool,
    constants: FxHashMap<Constant<'a>, u32>,
    pub free_reg: u32,
}

impl<'a> Codegen<'a> {
    pub fn new(enabled: bool) -> Self {
        Codegen {
            enabled,
            constants: FxHashMap::default(),
            free_reg: 0,
        }
    }

    pub fn constant_count(&self) -> u32 {
        self.constants.len() as u32
    }

    /// `addk`: the index of a constant, adding it if new.
    pub fn constant(&mut self, k: Constant<'a>) -> Result<u32, Overflow> {
        if !self.enabled {
            return Ok(0);
        }
        let next = self.constants.len() as u32;
        match self.constants.entry(k) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                if next >= MAX_CONSTANTS {
                    return Err(Overflow::Constants);
                }
                e.insert(next);
                Ok(next)
            }
        }
    }

    /// `luaK_reserveregs`.
    pub fn reserve(&mut self, n: u32) -> Result<(), Overflow> {
        if !self.enabled {
            return Ok(());
        }
        let new = self.free_reg + n;
        if new >= MAX_REGISTERS {
            return Err(Overflow::Registers);
        }
        self.free_reg = new;
        Ok(())
    }

    /// `luaK_exp2RK`: an operand of SETTABLE; needs a register unless it is a constant with a
    /// small index.
    pub fn use_as_operand(&mut self, e: Exp<'a>) -> Result<(), Overflow> {
        match e {
            Exp::InRegister => Ok(()),
            Exp::Str(index) => {
                if index <= MAX_INDEX_RK {
                    Ok(())
                } else {
                    self.reserve(1)
                }
            }
            Exp::Lazy(k) => {
                // The test is on the size of the constant table, not on the index.
                if self.constant_count() <= MAX_INDEX_RK {
                    self.constant(k).map(|_| ())
                } else {
                    if matches!(k, Constant::Num(_)) {
                        self.constant(k)?;
                    }
                    self.reserve(1)
                }
            }
        }
    }

    /// `luaK_exp2nextreg`: an array item (or a global's value) moved into the next register.
    pub fn load_into_register(&mut self, e: Exp<'a>) -> Result<(), Overflow> {
        match e {
            // Freed and taken again: no change.
            Exp::InRegister => Ok(()),
            Exp::Str(_) => self.reserve(1),
            Exp::Lazy(k) => {
                if matches!(k, Constant::Num(_)) {
                    self.constant(k)?;
                }
                self.reserve(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_dedupe_by_value() {
        let mut cg = Codegen::new(true);
        assert_eq!(cg.constant(Constant::Str(Cow::Borrowed(b"a"))), Ok(0));
        assert_eq!(cg.constant(Constant::number(1.0)), Ok(1));
        assert_eq!(cg.constant(Constant::Str(Cow::Owned(b"a".to_vec()))), Ok(0));
        assert_eq!(cg.constant(Constant::number(-0.0)), Ok(2));
        assert_eq!(cg.constant(Constant::number(0.0)), Ok(2));
    }

    #[test]
    fn registers_overflow_at_lua_bound() {
        let mut cg = Codegen::new(true);
        cg.reserve(MAX_REGISTERS - 1).unwrap();
        assert_eq!(cg.reserve(1), Err(Overflow::Registers));
    }

    #[test]
    fn disabled_model_never_overflows() {
        let mut cg = Codegen::new(false);
        cg.reserve(10_000).unwrap();
        assert_eq!(cg.constant_count(), 0);
    }
}
