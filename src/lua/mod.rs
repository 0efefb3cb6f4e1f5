//! Reading and writing WoW SavedVariables files: the data subset of Lua 5.1.
//!
//! - [`parse`] / [`parse_with`]: bytes to a [`Document`] (a value tree with byte spans).
//! - [`Document::value`]: a node to an owned [`LuaValue`], with Lua's table semantics.
//! - [`write`]: a value to text in the client's layout. [`splice`]: replace one value in a file.

mod diag;
mod lexer;
mod limits;
mod number;
mod owned;
mod parser;
mod splice;
mod syntax;
mod text;
mod value;
mod window;
mod write;

pub use diag::{ErrorCode, LineIndex, ParseError, Position};
pub use limits::{Limits, MAX_CONSTANTS, MAX_REGISTERS, MAX_TABLE_DEPTH};
pub use number::{NumberError, format_number, is_valid_numeral, numeral_value};
pub use owned::{ParsedFile, PlacedError};
pub use parser::{Keep, ParseOptions, parse, parse_with};
pub use splice::{KeyPath, SpliceError, Splicer, WriteFn, splice};
pub use syntax::{Document, Field, FieldKey, Global, KeyKind, KeyNode, Kind, Node, Span};
pub use text::{decode_long, decode_quoted, write_quoted};
pub use value::{Key, LuaValue, NotKept, Number, Table, sequence_len};
pub use window::{BlockParse, BlocksError, parse_blocks};
pub use write::{
    Indent, Item, Layout, LineEnding, Spill, WriteError, write_file, write_items,
    write_items_spilling, write_key, write_number, write_tables_spilling, write_value,
};
