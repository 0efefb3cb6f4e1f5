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

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

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

/// C calls on the stack when the game's loader parses a file. The standalone `lua5.1 FILE`
/// parses inside one (`lua_cpcall`), which costs one syntax level; the game's own loader is
/// unknown, so the reader assumes at least that much and accepts only what `lua5.1 FILE` loads.
pub const LOADER_C_LEVELS: u32 = 1;

/// Deepest table nesting whose tables may hold values: `X = {` is depth 1, and the parse level
/// of a value inside depth `d` is `d + 2` (the chunk and the statement's expression), plus the
/// loader's C calls.
pub const MAX_TABLE_DEPTH: u32 = MAX_SYNTAX_LEVELS - 2 - LOADER_C_LEVELS;

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

/// A constant that is not a string (strings have their own map, looked up by bytes). Lua keys
/// its constant table by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Constant {
    /// The bits of the number, with -0 folded into 0 (they are one table key in Lua).
    Num(u64),
    Bool(bool),
    Nil,
}

impl Constant {
    pub fn number(value: f64) -> Self {
        let value = if value == 0.0 { 0.0 } else { value };
        Constant::Num(value.to_bits())
    }
}

/// How an expression stands in the compiler when it is used (`expdesc.k`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Exp {
    /// A string: already in the constant table (strings are added when parsed); `fits_operand`
    /// tells whether its index is small enough to be named by an instruction (`<= 255`).
    Str { fits_operand: bool },
    /// A number, boolean or nil: becomes a constant (or a load) only when used.
    Lazy(Constant),
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
///
/// Only two facts about constants matter: whether a constant is one of the first 256 (its
/// index then fits an instruction operand, which decides whether a key takes a register), and
/// how many distinct constants there are (Lua 5.1 stops at 262,143). The first 256 are kept
/// exactly, by value. Besides, a 64-bit hash of every constant is kept, which counts
/// distinct constants without storing or comparing their bytes; a collision can only make that
/// count smaller, so a count over the limit is certain, and a count that ends close to the limit
/// is confirmed by an exact recount (see [`Codegen::needs_exact_recount`]).
///
/// Most files have fewer constant tokens than the limit, and then no overflow is possible: so
/// hashes are only appended to a list until the number of tokens passes the limit, and the set
/// that counts distinct values is built only then.
pub(crate) struct Codegen<'a> {
    enabled: bool,
    first_strings: FxHashMap<Cow<'a, [u8]>, u32>,
    /// The [`StringHash`] of each of `first_strings`: most strings are not among them, and
    /// this tells without their bytes.
    first_hashes: HashSet<u64, BuildHasherDefault<PassThrough>>,
    first_others: FxHashMap<Constant, u32>,
    /// Hashes of constants not among the first 256, while there may be too many to count.
    hashes: Vec<u64>,
    /// Distinct hashes, once `hashes` has more entries than the limit.
    seen: Option<HashSet<u64, BuildHasherDefault<PassThrough>>>,
    pub free_reg: u32,
}

/// Constants whose index fits an instruction operand (`MAXINDEXRK + 1`).
const FIRST: usize = MAX_INDEX_RK as usize + 1;

/// How close to the limit a hashed count must come to be recounted exactly. Reaching the limit
/// unnoticed would take this many 64-bit hash collisions in one file.
const RECOUNT_MARGIN: usize = 64;

impl<'a> Codegen<'a> {
    /// `expected_constants` sizes the hash set up front (it never grows past the limit).
    pub fn new(enabled: bool, expected_constants: usize) -> Self {
        let capacity = if enabled {
            expected_constants.min(MAX_CONSTANTS as usize + 1)
        } else {
            0
        };
        Codegen {
            enabled,
            first_strings: FxHashMap::default(),
            first_hashes: HashSet::default(),
            first_others: FxHashMap::default(),
            hashes: Vec::with_capacity(capacity),
            seen: None,
            free_reg: 0,
        }
    }

    fn exact_count(&self) -> usize {
        self.first_strings.len() + self.first_others.len()
    }

    /// At most this many distinct constants exist (exact below 256, and once counted by hash).
    fn count_bound(&self) -> usize {
        self.seen.as_ref().map_or(self.hashes.len(), HashSet::len)
    }

    /// Distinct constants so far (counting by hash, for tests).
    #[cfg(test)]
    pub fn constant_count(&self) -> usize {
        let distinct: HashSet<u64> = self
            .hashes
            .iter()
            .copied()
            .chain(self.seen.iter().flatten().copied())
            .collect();
        distinct.len()
    }

    /// True when the hashed count ended within reach of the limit, where collisions could hide
    /// an overflow: the caller then counts exactly.
    pub fn needs_exact_recount(&self) -> bool {
        self.enabled && self.count_bound() + RECOUNT_MARGIN > MAX_CONSTANTS as usize
    }

    /// Booleans and nils among the constants (only the first 256 can be such).
    pub fn scalar_constants_in_first(&self) -> usize {
        self.first_others
            .keys()
            .filter(|k| !matches!(k, Constant::Num(_)))
            .count()
    }

    /// Counts a constant by its hash. Every constant is hashed, the first 256 too, so a constant
    /// seen again after the first 256 were numbered (and not looked up in their exact maps) is
    /// still counted once.
    fn count_new(&mut self, hash: u64) -> Result<(), Overflow> {
        let limit = MAX_CONSTANTS as usize;
        if let Some(seen) = &mut self.seen {
            if seen.insert(hash) && seen.len() > limit {
                return Err(Overflow::Constants);
            }
            return Ok(());
        }
        self.hashes.push(hash);
        if self.hashes.len() > limit {
            // Enough tokens to overflow: from now on count distinct values.
            let mut seen =
                HashSet::with_capacity_and_hasher(limit + 1, BuildHasherDefault::default());
            seen.extend(self.hashes.drain(..));
            self.hashes = Vec::new();
            let distinct = seen.len();
            self.seen = Some(seen);
            if distinct > limit {
                return Err(Overflow::Constants);
            }
        }
        Ok(())
    }

    /// `luaK_stringK` for a string with these bytes. Returns whether its index fits an operand;
    /// that is only worked out when `need_index` is set (a key, or a keyed field's value) or
    /// while the first 256 constants are being numbered. `owned` makes the key to keep.
    pub fn string(
        &mut self,
        bytes: &[u8],
        owned: impl FnOnce() -> Cow<'a, [u8]>,
        need_index: bool,
    ) -> Result<bool, Overflow> {
        self.string_hashed(hash_bytes(bytes), owned, need_index)
    }

    /// [`Codegen::string`] for a string whose [`StringHash`] is known: its bytes (`bytes`) are
    /// only made when they must be compared or kept (among the first 256 constants).
    pub fn string_hashed(
        &mut self,
        hash: u64,
        bytes: impl FnOnce() -> Cow<'a, [u8]>,
        need_index: bool,
    ) -> Result<bool, Overflow> {
        if !self.enabled {
            return Ok(true);
        }
        let numbering = self.exact_count() < FIRST;
        let mut bytes = Some(bytes);
        let mut kept = None;
        if (numbering || need_index) && self.first_hashes.contains(&hash) {
            let b = bytes.take().map(|f| f()).unwrap_or_default();
            if self.first_strings.contains_key(b.as_ref()) {
                return Ok(true);
            }
            kept = Some(b);
        }
        self.count_new(hash)?;
        if numbering {
            let index = self.exact_count() as u32;
            let b = kept.or_else(|| bytes.map(|f| f())).unwrap_or_default();
            self.first_strings.insert(b, index);
            self.first_hashes.insert(hash);
            return Ok(true);
        }
        Ok(false)
    }

    /// `addk` for numbers, booleans and nil.
    pub fn constant(&mut self, k: Constant) -> Result<(), Overflow> {
        if !self.enabled || self.first_others.contains_key(&k) {
            return Ok(());
        }
        self.count_new(hash_constant(k))?;
        if self.exact_count() < FIRST {
            let index = self.exact_count() as u32;
            self.first_others.insert(k, index);
        }
        Ok(())
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
    pub fn use_as_operand(&mut self, e: Exp) -> Result<(), Overflow> {
        match e {
            Exp::InRegister => Ok(()),
            Exp::Str { fits_operand } => {
                if fits_operand {
                    Ok(())
                } else {
                    self.reserve(1)
                }
            }
            Exp::Lazy(k) => {
                // The test is on the size of the constant table, not on the index.
                if self.exact_count() < FIRST {
                    self.constant(k)
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
    pub fn load_into_register(&mut self, e: Exp) -> Result<(), Overflow> {
        match e {
            // Freed and taken again: no change.
            Exp::InRegister => Ok(()),
            Exp::Str { .. } => self.reserve(1),
            Exp::Lazy(k) => {
                if matches!(k, Constant::Num(_)) {
                    self.constant(k)?;
                }
                self.reserve(1)
            }
        }
    }
}

/// A 64-bit hash of a string constant's bytes (well mixed, so it can index a table as is).
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = StringHash::default();
    h.write(bytes);
    h.finish()
}

/// The hash of a string constant, fed in pieces: the same for any split of the same bytes, so
/// the lexer hashes a quoted string while it reads it (its plain stretches and the bytes its
/// escapes stand for) without decoding it into a buffer first.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StringHash {
    h: u64,
    /// Bytes not yet in `h` (fewer than 8), little-endian.
    tail: u64,
    tail_len: u32,
    len: u64,
}

impl StringHash {
    fn round(h: u64, word: u64) -> u64 {
        (h.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95)
    }

    pub fn write(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        while self.tail_len > 0 && !bytes.is_empty() {
            self.push(bytes[0]);
            bytes = &bytes[1..];
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            self.h = Self::round(self.h, u64::from_le_bytes(word));
        }
        for &b in words.remainder() {
            self.push(b);
        }
    }

    /// One byte (an escape's value).
    pub fn byte(&mut self, b: u8) {
        self.len += 1;
        self.push(b);
    }

    fn push(&mut self, b: u8) {
        self.tail |= u64::from(b) << (8 * self.tail_len);
        self.tail_len += 1;
        if self.tail_len == 8 {
            self.h = Self::round(self.h, self.tail);
            self.tail = 0;
            self.tail_len = 0;
        }
    }

    pub fn finish(self) -> u64 {
        let h = if self.tail_len > 0 {
            Self::round(self.h, self.tail)
        } else {
            self.h
        };
        mix(h ^ self.len.rotate_left(32))
    }
}

fn hash_constant(k: Constant) -> u64 {
    let (tag, bits) = match k {
        Constant::Num(bits) => (1u64, bits),
        Constant::Bool(b) => (2, u64::from(b)),
        Constant::Nil => (3, 0),
    };
    mix(bits ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The SplitMix64 finalizer: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_dedupe_by_value() {
        let mut cg = Codegen::new(true, 16);
        assert_eq!(cg.string(b"a", || Cow::Borrowed(b"a"), true), Ok(true));
        cg.constant(Constant::number(1.0)).unwrap();
        assert_eq!(
            cg.string(b"a", || Cow::Owned(b"a".to_vec()), true),
            Ok(true)
        );
        cg.constant(Constant::number(-0.0)).unwrap();
        cg.constant(Constant::number(0.0)).unwrap();
        assert_eq!(cg.constant_count(), 3);
    }

    #[test]
    fn only_the_first_256_constants_fit_an_operand() {
        let mut cg = Codegen::new(true, 1000);
        let names: Vec<Vec<u8>> = (0..300).map(|i| format!("k{i}").into_bytes()).collect();
        for (i, n) in names.iter().enumerate() {
            let fits = cg.string(n, || Cow::Owned(n.clone()), true).unwrap();
            assert_eq!(fits, i < 256, "{i}");
        }
        // Seen again: the first ones still fit, later ones still do not.
        assert_eq!(
            cg.string(&names[3], || Cow::Owned(names[3].clone()), true),
            Ok(true)
        );
        assert_eq!(
            cg.string(&names[299], || Cow::Owned(names[299].clone()), true),
            Ok(false)
        );
        assert_eq!(cg.constant_count(), 300);
    }

    #[test]
    fn registers_overflow_at_lua_bound() {
        let mut cg = Codegen::new(true, 0);
        cg.reserve(MAX_REGISTERS - 1).unwrap();
        assert_eq!(cg.reserve(1), Err(Overflow::Registers));
    }

    #[test]
    fn disabled_model_never_overflows() {
        let mut cg = Codegen::new(false, 0);
        cg.reserve(10_000).unwrap();
        assert_eq!(cg.constant_count(), 0);
    }

    #[test]
    fn hashes_differ_for_near_identical_strings() {
        let a =
            hash_bytes(b"Skipping entry 199901010000001234 with matching lastUpdated timestamp.");
        let b =
            hash_bytes(b"Skipping entry 199901010000001235 with matching lastUpdated timestamp.");
        assert_ne!(a, b);
        assert_ne!(hash_bytes(b""), hash_constant(Constant::Nil));
    }
}
