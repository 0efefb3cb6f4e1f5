//! Parser for SavedVariables files: a sequence of `Name = value` statements over the data
//! subset of Lua 5.1.
//!
//! The parser is iterative (an explicit stack of open tables), so no input can overflow the
//! thread's stack, and linear in the size of the input. It checks every byte of the file but
//! only keeps the tables the caller asks for ([`Keep`]); everything else is recorded as a span.

use std::borrow::Cow;
use std::collections::HashSet;

use super::diag::{ErrorCode, ParseError, Position};
use super::lexer::{Lexer, Tok, Token};
use super::limits::{Codegen, Constant, Exp, FIELDS_PER_FLUSH, Limits, MAX_TABLE_DEPTH, Overflow};
use super::number::numeral_value;
use super::syntax::{Document, Field, FieldKey, Global, KeyNode, Kind, Node, Span};
use super::text::{decode_long, decode_quoted, decode_quoted_into};

/// Which tables to keep in the tree. The whole file is checked either way.
#[derive(Debug, Clone, Copy)]
pub enum Keep<'p> {
    /// Keep every table.
    All,
    /// Keep only the top-level statements (tables become spans).
    Nothing,
    /// Keep the tables along these key paths and everything under their ends. A path is a global
    /// name followed by string keys, e.g. `["GuildHelper_SavedVariables", "sharedData"]`.
    /// At most 64 paths.
    Paths(&'p [&'p [&'p str]]),
}

#[derive(Debug, Clone, Copy)]
pub struct ParseOptions<'p> {
    pub keep: Keep<'p>,
    pub limits: Limits,
}

impl Default for ParseOptions<'_> {
    fn default() -> Self {
        ParseOptions {
            keep: Keep::All,
            limits: Limits::default(),
        }
    }
}

/// Parses a whole file and keeps every table.
pub fn parse(src: &[u8]) -> Result<Document<'_>, ParseError> {
    parse_with(src, &ParseOptions::default())
}

/// Parses a whole file, keeping what `options.keep` asks for.
pub fn parse_with<'a>(
    src: &'a [u8],
    options: &ParseOptions<'_>,
) -> Result<Document<'a>, ParseError> {
    if src.len() > options.limits.max_file_size {
        return Err(ParseError::new(
            0,
            ErrorCode::TooLarge,
            format!(
                "the file is {} bytes; svsync reads files up to {} bytes",
                src.len(),
                options.limits.max_file_size
            ),
        ));
    }
    let (globals, fields, recount) =
        parse_source(SliceSource(Lexer::new(src)), src.len(), options).0?;
    if let Some(first_scalars) = recount
        && let Some(at) = exact_constant_overflow(src, first_scalars)
    {
        return Err(overflow_error(at, Overflow::Constants));
    }
    Ok(Document {
        src,
        globals,
        fields,
    })
}

/// What a parse found: the top-level statements, the arena of kept fields, and, when the
/// hashed constant count came close to Lua's limit, the number of scalar constants among the
/// first 256 (the caller then recounts the file exactly).
type Parsed = (Vec<Global>, Vec<Field>, Option<usize>);

/// Parses everything `source` yields; `len` is the file's size (it sizes the constant count).
/// The source comes back with the result, for what it learned on the way.
pub(crate) fn parse_source<'a, S: Source<'a>>(
    source: S,
    len: usize,
    options: &ParseOptions<'_>,
) -> (Result<Parsed, ParseError>, S) {
    let paths: &[&[&str]] = match options.keep {
        Keep::Paths(p) => &p[..p.len().min(64)],
        _ => &[],
    };
    let mut parser = Parser {
        source,
        codegen: Codegen::new(options.limits.lua_compiler_limits, len / 64),
        keep: options.keep,
        paths,
        frames: Vec::new(),
        scratch: Vec::new(),
        fields: Vec::new(),
        globals: Vec::new(),
    };
    if let Err(e) = parser.chunk() {
        return (Err(e), parser.source);
    }
    let recount = parser
        .codegen
        .needs_exact_recount()
        .then(|| parser.codegen.scalar_constants_in_first());
    // The arena grew by doubling: give back what it does not hold.
    let mut fields = parser.fields;
    fields.shrink_to_fit();
    (Ok((parser.globals, fields, recount)), parser.source)
}

/// Counts the constants of a valid file exactly, by value, and returns where the count first
/// passes Lua 5.1's limit. Every name, string and number of a data file becomes a constant;
/// `first_scalars` booleans and nils did too (they only can while fewer than 256 exist).
fn exact_constant_overflow(src: &[u8], first_scalars: usize) -> Option<usize> {
    let mut strings: HashSet<Cow<'_, [u8]>> = HashSet::new();
    let mut numbers: HashSet<u64> = HashSet::new();
    let mut lexer = Lexer::new(src);
    let mut negative = false;
    loop {
        let tok = lexer.next_token().ok()?;
        let new = match tok.tok {
            Tok::Eof => return None,
            Tok::Name => {
                let name = &src[tok.start..tok.end];
                !RESERVED.contains(&name) && strings.insert(Cow::Borrowed(name))
            }
            Tok::Str {
                open, close, long, ..
            } => {
                let body = &src[tok.start + open as usize..tok.end - close as usize];
                let bytes = if long {
                    decode_long(body)
                } else {
                    decode_quoted(body)
                };
                strings.insert(bytes)
            }
            Tok::Number => {
                let value = numeral_value(&src[tok.start..tok.end]).unwrap_or(0.0);
                let value = if negative { -value } else { value };
                let Constant::Num(bits) = Constant::number(value) else {
                    return None;
                };
                numbers.insert(bits)
            }
            _ => false,
        };
        negative = tok.tok == Tok::Minus;
        if new
            && strings.len() + numbers.len() + first_scalars > super::limits::MAX_CONSTANTS as usize
        {
            return Some(tok.start);
        }
    }
}

/// Where the parser's tokens and their bytes come from: a whole file in memory
/// ([`SliceSource`]) or a window that moves along a file read in blocks
/// ([`super::window::WindowSource`]). Offsets are always offsets in the file.
pub(crate) trait Source<'a> {
    fn next_token(&mut self) -> Result<Token, ParseError>;
    /// The bytes `start..end`; empty if they are no longer (or not yet) at hand, which only an
    /// error message can ask for.
    fn bytes(&self, start: usize, end: usize) -> &[u8];
    /// The bytes `start..end` for a constant that is kept for the whole parse.
    fn cow(&self, start: usize, end: usize) -> Cow<'a, [u8]>;
    /// Where the next token is looked for; with [`Source::set_pos`], reads one token ahead.
    fn pos(&self) -> usize;
    fn set_pos(&mut self, pos: usize);
    /// The line of `offset`, for an error message.
    fn line_of(&self, offset: usize) -> usize;
}

/// A whole file in memory: every byte is at hand and constants borrow from it.
struct SliceSource<'a>(Lexer<'a>);

impl<'a> Source<'a> for SliceSource<'a> {
    #[inline]
    fn next_token(&mut self) -> Result<Token, ParseError> {
        self.0.next_token()
    }

    #[inline]
    fn bytes(&self, start: usize, end: usize) -> &[u8] {
        self.0.src().get(start..end).unwrap_or_default()
    }

    #[inline]
    fn cow(&self, start: usize, end: usize) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.0.src().get(start..end).unwrap_or_default())
    }

    fn pos(&self) -> usize {
        self.0.pos
    }

    fn set_pos(&mut self, pos: usize) {
        self.0.pos = pos;
    }

    fn line_of(&self, offset: usize) -> usize {
        Position::of(self.0.src(), offset).line
    }
}

/// A key's bytes, for matching the paths to keep.
enum KeyText {
    None,
    /// At this range of the file.
    At(usize, usize),
    /// Decoded from an escaped string.
    Owned(Vec<u8>),
}

/// Which part of a table is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeepState {
    All,
    /// On the way to a kept path: `mask` has the paths still matching, `depth` the next key.
    Prefix {
        depth: usize,
        mask: u64,
    },
    None,
}

/// Where a table being parsed goes when it closes.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Global {
        name: Span,
    },
    Field {
        key: FieldKey,
        restore_reg: Option<u32>,
    },
}

struct Frame {
    open: usize,
    mark: usize,
    keep: KeepState,
    depth: u32,
    table_reg: u32,
    pending: Option<Exp>,
    to_store: u32,
    slot: Slot,
}

struct Parser<'a, 'p, S> {
    source: S,
    codegen: Codegen<'a>,
    keep: Keep<'p>,
    paths: &'p [&'p [&'p str]],
    frames: Vec<Frame>,
    scratch: Vec<Field>,
    /// Reused buffer for decoding escaped strings.
    fields: Vec<Field>,
    globals: Vec<Global>,
}

/// Where a scalar value stands, which decides what Lua's compiler does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `[key]`: nil and tables are refused; an operand of SETTABLE.
    Key,
    /// The value of a keyed field: an operand of SETTABLE.
    KeyedValue,
    /// An array item or a global's value: loaded into a register.
    Item,
}

enum Step {
    FieldStart,
    AfterField,
    StatementDone,
}

const RESERVED: &[&[u8]] = &[
    b"and",
    b"break",
    b"do",
    b"else",
    b"elseif",
    b"end",
    b"false",
    b"for",
    b"function",
    b"if",
    b"in",
    b"local",
    b"nil",
    b"not",
    b"or",
    b"repeat",
    b"return",
    b"then",
    b"true",
    b"until",
    b"while",
];

fn span(start: usize, end: usize) -> Span {
    // The file size is bounded below 4 GiB, so offsets fit.
    Span {
        start: start as u32,
        end: end as u32,
    }
}

impl<'a, S: Source<'a>> Parser<'a, '_, S> {
    fn bytes(&self, start: usize, end: usize) -> &[u8] {
        self.source.bytes(start, end)
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        self.source.next_token()
    }

    fn token_text(&self, tok: &Token) -> Cow<'_, str> {
        String::from_utf8_lossy(self.bytes(tok.start, tok.end))
    }

    fn chunk(&mut self) -> Result<(), ParseError> {
        let mut after_statement = false;
        loop {
            let tok = self.next()?;
            match tok.tok {
                Tok::Eof => return Ok(()),
                Tok::Semi if after_statement => {
                    after_statement = false;
                    continue;
                }
                Tok::Name => {}
                _ => return Err(self.statement_start_error(&tok, after_statement)),
            }
            self.statement(tok)?;
            after_statement = true;
        }
    }

    fn statement_start_error(&self, tok: &Token, after_statement: bool) -> ParseError {
        if tok.start == 0 && self.bytes(0, 3) == b"\xEF\xBB\xBF" {
            return ParseError::new(
                0,
                ErrorCode::Unexpected,
                "the file starts with a byte order mark (EF BB BF), which Lua 5.1 cannot read; \
                 save it as UTF-8 without a BOM",
            );
        }
        if after_statement
            && matches!(
                tok.tok,
                Tok::Op | Tok::Minus | Tok::LParen | Tok::Str { .. } | Tok::LBrace
            )
        {
            return ParseError::new(
                tok.start,
                ErrorCode::Expression,
                format!(
                    "`{}` after a value: SavedVariables files hold plain values, not \
                     expressions or calls",
                    self.token_text(tok)
                ),
            );
        }
        if after_statement && tok.tok == Tok::Comma {
            // `X = 1, 2` is a multiple assignment: valid Lua, but not a data file's form.
            return ParseError::new(
                tok.start,
                ErrorCode::Statement,
                "a second value after `,`: a SavedVariables file assigns one value per name \
                 (`Name = value`)",
            );
        }
        ParseError::new(
            tok.start,
            ErrorCode::Unexpected,
            format!(
                "unexpected `{}`: every statement of a SavedVariables file has the form \
                 `Name = value`",
                self.token_text(tok)
            ),
        )
    }

    fn statement(&mut self, name_tok: Token) -> Result<(), ParseError> {
        let name = self.bytes(name_tok.start, name_tok.end);
        if RESERVED.contains(&name) {
            return Err(ParseError::new(
                name_tok.start,
                ErrorCode::Statement,
                format!(
                    "`{}` statements are not allowed: a SavedVariables file may only contain \
                     lines of the form `Name = value`",
                    String::from_utf8_lossy(name)
                ),
            ));
        }
        self.codegen.free_reg = 0;
        self.string_constant(name_tok.start, name_tok.start, name_tok.end, false)?;
        let assign = self.next()?;
        let name = self.bytes(name_tok.start, name_tok.end);
        match assign.tok {
            Tok::Assign => {}
            Tok::Comma => {
                return Err(ParseError::new(
                    assign.start,
                    ErrorCode::Statement,
                    "assigning several names at once is not allowed: write one `Name = value` \
                     per line",
                ));
            }
            Tok::LParen | Tok::Str { .. } | Tok::LBrace => {
                return Err(ParseError::new(
                    name_tok.start,
                    ErrorCode::Expression,
                    format!(
                        "`{}` is called like a function: SavedVariables files hold plain \
                         values, not code",
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
            Tok::Eof => return Err(self.truncated(assign.start)),
            _ => {
                return Err(ParseError::new(
                    assign.start,
                    ErrorCode::Statement,
                    format!(
                        "expected `=` after `{}`, found `{}`",
                        String::from_utf8_lossy(name),
                        self.token_text(&assign)
                    ),
                ));
            }
        }
        let name_span = span(name_tok.start, name_tok.end);
        let keep = self.global_keep(self.bytes(name_tok.start, name_tok.end));
        let value_tok = self.next()?;
        if value_tok.tok == Tok::LBrace {
            self.open_table(value_tok.start, keep, 0, Slot::Global { name: name_span })?;
            return self.tables();
        }
        let (node, exp) = self.scalar(value_tok, Role::Item)?;
        self.with_overflow(value_tok.start, |cg| cg.load_into_register(exp))?;
        self.globals.push(Global {
            name: name_span,
            value: node,
        });
        Ok(())
    }

    /// Runs until the outermost open table of the current statement is closed.
    fn tables(&mut self) -> Result<(), ParseError> {
        let mut step = Step::FieldStart;
        loop {
            step = match step {
                Step::FieldStart => self.field_start()?,
                Step::AfterField => self.after_field()?,
                Step::StatementDone => return Ok(()),
            };
        }
    }

    fn field_start(&mut self) -> Result<Step, ParseError> {
        let tok = self.next()?;
        if tok.tok == Tok::RBrace {
            return self.close_table(tok);
        }
        if tok.tok == Tok::Eof {
            return Err(self.truncated(tok.start));
        }
        self.close_list_field(tok.start)?;
        let frame = self
            .frames
            .last()
            .expect("a table is open while fields are parsed");
        if frame.depth > MAX_TABLE_DEPTH {
            return Err(ParseError::new(
                tok.start,
                ErrorCode::TooDeep,
                format!(
                    "tables are nested more than {MAX_TABLE_DEPTH} levels deep here; Lua 5.1 \
                     refuses to load such a file (chunk has too many syntax levels)"
                ),
            ));
        }
        match tok.tok {
            Tok::LBracket => {
                let key_tok = self.next()?;
                let (key_node, key_exp) = self.scalar(key_tok, Role::Key)?;
                self.expect(Tok::RBracket, "`]` after the key")?;
                self.expect(Tok::Assign, "`=` after `[key]`")?;
                let restore = self.codegen.free_reg;
                self.with_overflow(key_tok.start, |cg| cg.use_as_operand(key_exp))?;
                let key_text = self.key_text(key_node);
                // `scalar` gives a key only a string, number or boolean.
                let Some(key) = KeyNode::of(key_node) else {
                    return Err(ParseError::new(
                        key_tok.start,
                        ErrorCode::Unexpected,
                        "expected a string, number or boolean as the key",
                    ));
                };
                self.field_value(FieldKey::Bracket(key), Some(restore), key_text)
            }
            Tok::Name => {
                let name = self.bytes(tok.start, tok.end);
                if matches!(name, b"true" | b"false" | b"nil") {
                    return self.positional(tok);
                }
                let after = self.next()?;
                if after.tok != Tok::Assign {
                    // A name that is not a key is a name used as a value.
                    return Err(self.name_error(tok, after));
                }
                let name = self.bytes(tok.start, tok.end);
                if RESERVED.contains(&name) {
                    return Err(ParseError::new(
                        tok.start,
                        ErrorCode::Unexpected,
                        format!(
                            "`{0}` is a reserved word of Lua and cannot be a key without \
                             brackets: write `[\"{0}\"] =`",
                            String::from_utf8_lossy(name)
                        ),
                    ));
                }
                let restore = self.codegen.free_reg;
                let fits_operand = self.string_constant(tok.start, tok.start, tok.end, true)?;
                self.with_overflow(tok.start, |cg| cg.use_as_operand(Exp::Str { fits_operand }))?;
                let key_text = if self.parent_matches_paths() {
                    KeyText::At(tok.start, tok.end)
                } else {
                    KeyText::None
                };
                self.field_value(
                    FieldKey::Name(span(tok.start, tok.end)),
                    Some(restore),
                    key_text,
                )
            }
            _ => self.positional(tok),
        }
    }

    fn positional(&mut self, tok: Token) -> Result<Step, ParseError> {
        if tok.tok == Tok::LBrace {
            let keep = self.child_keep(None);
            self.open_table(
                tok.start,
                keep,
                self.depth(),
                Slot::Field {
                    key: FieldKey::Positional,
                    restore_reg: None,
                },
            )?;
            return Ok(Step::FieldStart);
        }
        let (node, exp) = self.scalar(tok, Role::Item)?;
        self.finish_field(FieldKey::Positional, None, node, exp, tok.start)
    }

    fn field_value(
        &mut self,
        key: FieldKey,
        restore_reg: Option<u32>,
        key_text: KeyText,
    ) -> Result<Step, ParseError> {
        let tok = self.next()?;
        if tok.tok == Tok::LBrace {
            let keep = match &key_text {
                KeyText::None => self.child_keep(None),
                KeyText::At(start, end) => self.child_keep(Some(self.bytes(*start, *end))),
                KeyText::Owned(bytes) => self.child_keep(Some(bytes)),
            };
            self.open_table(
                tok.start,
                keep,
                self.depth(),
                Slot::Field { key, restore_reg },
            )?;
            return Ok(Step::FieldStart);
        }
        let (node, exp) = self.scalar(tok, Role::KeyedValue)?;
        self.finish_field(key, restore_reg, node, exp, tok.start)
    }

    fn finish_field(
        &mut self,
        key: FieldKey,
        restore_reg: Option<u32>,
        node: Node,
        exp: Exp,
        at: usize,
    ) -> Result<Step, ParseError> {
        match restore_reg {
            Some(reg) => {
                self.with_overflow(at, |cg| cg.use_as_operand(exp))?;
                self.codegen.free_reg = reg;
            }
            None => {
                let frame = self.frames.last_mut().expect("a table is open");
                frame.pending = Some(exp);
                frame.to_store += 1;
            }
        }
        let frame = self.frames.last().expect("a table is open");
        if frame.keep != KeepState::None {
            self.scratch.push(Field { key, value: node });
        }
        Ok(Step::AfterField)
    }

    fn after_field(&mut self) -> Result<Step, ParseError> {
        let tok = self.next()?;
        match tok.tok {
            Tok::Comma | Tok::Semi => Ok(Step::FieldStart),
            Tok::RBrace => self.close_table(tok),
            Tok::Eof => Err(self.truncated(tok.start)),
            Tok::Op | Tok::Minus => Err(ParseError::new(
                tok.start,
                ErrorCode::Expression,
                format!(
                    "operator `{}` is not allowed: SavedVariables files hold plain values, \
                     not expressions",
                    self.token_text(&tok)
                ),
            )),
            _ => Err(ParseError::new(
                tok.start,
                ErrorCode::Unexpected,
                format!(
                    "expected `,` or `}}` after this field, found `{}`",
                    self.token_text(&tok)
                ),
            )),
        }
    }

    /// `closelistfield`: the previous array item moves into a register; 50 pending items are
    /// stored and their registers freed.
    fn close_list_field(&mut self, at: usize) -> Result<(), ParseError> {
        let frame = self.frames.last_mut().expect("a table is open");
        let Some(pending) = frame.pending.take() else {
            return Ok(());
        };
        let flush = frame.to_store == FIELDS_PER_FLUSH;
        let table_reg = frame.table_reg;
        if flush {
            frame.to_store = 0;
        }
        self.with_overflow(at, |cg| cg.load_into_register(pending))?;
        if flush {
            self.codegen.free_reg = table_reg + 1;
        }
        Ok(())
    }

    fn open_table(
        &mut self,
        at: usize,
        keep: KeepState,
        parent_depth: u32,
        slot: Slot,
    ) -> Result<(), ParseError> {
        let table_reg = self.codegen.free_reg;
        self.with_overflow(at, |cg| cg.reserve(1))?;
        self.frames.push(Frame {
            open: at,
            mark: self.scratch.len(),
            keep,
            depth: parent_depth + 1,
            table_reg,
            pending: None,
            to_store: 0,
            slot,
        });
        Ok(())
    }

    fn close_table(&mut self, rbrace: Token) -> Result<Step, ParseError> {
        let frame = self.frames.pop().expect("a table is open");
        // `lastlistfield`
        if frame.to_store > 0
            && let Some(pending) = frame.pending
        {
            self.with_overflow(rbrace.start, |cg| cg.load_into_register(pending))?;
        }
        self.codegen.free_reg = frame.table_reg + 1;
        let kind = if frame.keep == KeepState::None {
            Kind::Skipped
        } else {
            let first = self.fields.len() as u32;
            let len = (self.scratch.len() - frame.mark) as u32;
            self.fields.extend(self.scratch.drain(frame.mark..));
            Kind::Table { first, len }
        };
        let node = Node {
            span: span(frame.open, rbrace.end),
            kind,
        };
        match frame.slot {
            Slot::Global { name } => {
                self.globals.push(Global { name, value: node });
                Ok(Step::StatementDone)
            }
            Slot::Field { key, restore_reg } => {
                self.finish_field(key, restore_reg, node, Exp::InRegister, rbrace.start)
            }
        }
    }

    fn depth(&self) -> u32 {
        self.frames.last().map_or(0, |f| f.depth)
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<Token, ParseError> {
        let tok = self.next()?;
        if tok.tok == want {
            return Ok(tok);
        }
        if tok.tok == Tok::Eof {
            return Err(self.truncated(tok.start));
        }
        if matches!(tok.tok, Tok::Op | Tok::Minus) {
            // `[2%9] = 1` is valid Lua (an expression as a key), but not data the game writes.
            return Err(ParseError::new(
                tok.start,
                ErrorCode::Expression,
                format!(
                    "operator `{}` is not allowed: SavedVariables files hold plain values, not \
                     expressions",
                    self.token_text(&tok)
                ),
            ));
        }
        Err(ParseError::new(
            tok.start,
            ErrorCode::Unexpected,
            format!("expected {what}, found `{}`", self.token_text(&tok)),
        ))
    }

    /// A value that is not a table.
    fn scalar(&mut self, tok: Token, role: Role) -> Result<(Node, Exp), ParseError> {
        let as_key = role == Role::Key;
        let need_index = role != Role::Item;
        match tok.tok {
            Tok::Str {
                open,
                close,
                long,
                escaped,
                hash,
            } => {
                let body = self.bytes(tok.start + open as usize, tok.end - close as usize);
                let fits_operand = if long && escaped {
                    // A long string with a CR: its line breaks become `\n` (rare).
                    let decoded = decode_long(body).into_owned();
                    let result =
                        self.codegen
                            .string(&decoded, || Cow::Owned(decoded.clone()), need_index);
                    result.map_err(|o| self.overflow(tok.start, o))?
                } else if long {
                    let (start, end) = (tok.start + open as usize, tok.end - close as usize);
                    self.string_constant(tok.start, start, end, need_index)?
                } else {
                    let (start, end) = (tok.start + open as usize, tok.end - close as usize);
                    self.quoted_constant(tok.start, start, end, escaped, hash, need_index)?
                };
                let node = Node {
                    span: span(tok.start, tok.end),
                    kind: Kind::Str {
                        open,
                        close,
                        long,
                        escaped,
                    },
                };
                Ok((node, Exp::Str { fits_operand }))
            }
            Tok::Number => {
                let value = numeral_value(self.bytes(tok.start, tok.end)).unwrap_or(0.0);
                let node = Node {
                    span: span(tok.start, tok.end),
                    kind: Kind::Number {
                        digits: tok.start as u32,
                    },
                };
                Ok((node, Exp::Lazy(Constant::number(value))))
            }
            Tok::Minus => self.negative(tok),
            Tok::Name => self.name_value(tok),
            Tok::LBrace if as_key => Err(ParseError::new(
                tok.start,
                ErrorCode::TableKey,
                "a table cannot be used as a key in a SavedVariables file",
            )),
            Tok::Eof => Err(self.truncated(tok.start)),
            Tok::Op | Tok::LParen => Err(ParseError::new(
                tok.start,
                ErrorCode::Expression,
                format!(
                    "`{}` starts an expression: SavedVariables files hold plain values, not \
                     expressions",
                    self.token_text(&tok)
                ),
            )),
            _ => Err(ParseError::new(
                tok.start,
                ErrorCode::Unexpected,
                format!("expected a value, found `{}`", self.token_text(&tok)),
            )),
        }
        .and_then(|(node, exp)| {
            if as_key && node.kind == Kind::Nil {
                Err(ParseError::new(
                    tok.start,
                    ErrorCode::NilKey,
                    "`nil` cannot be a key: Lua fails with \"table index is nil\" and the game \
                     would not load this file",
                ))
            } else {
                Ok((node, exp))
            }
        })
    }

    fn negative(&mut self, minus: Token) -> Result<(Node, Exp), ParseError> {
        // Lua parses `-x` as a unary operator applied to a sub-expression: one more syntax level
        // than a plain value, so at the deepest table level a negative number is too deep.
        let depth = self.frames.last().map_or(0, |f| f.depth);
        if depth >= MAX_TABLE_DEPTH {
            return Err(ParseError::new(
                minus.start,
                ErrorCode::TooDeep,
                format!(
                    "a negative number at table depth {depth}: Lua 5.1 refuses to load this file \
                     (chunk has too many syntax levels; `-` counts as one more level)"
                ),
            ));
        }
        let tok = self.next()?;
        match tok.tok {
            Tok::Number => {
                let value = numeral_value(self.bytes(tok.start, tok.end)).unwrap_or(0.0);
                let node = Node {
                    span: span(minus.start, tok.end),
                    kind: Kind::Number {
                        digits: tok.start as u32,
                    },
                };
                Ok((node, Exp::Lazy(Constant::number(-value))))
            }
            Tok::Name => {
                let after = self.source.pos();
                let call = self.next().map(|t| t.tok == Tok::LParen).unwrap_or(false);
                self.source.set_pos(after);
                let name = self.bytes(tok.start, tok.end);
                let message = if name == b"nan" && call {
                    "`-nan(ind)` is how a broken number was saved: Lua cannot evaluate it, so \
                     the game would fail to load this whole file and reset the addon's data"
                        .to_string()
                } else if name == b"inf" || name == b"nan" {
                    format!(
                        "`-{}` is not a number Lua can read: the game would fail to load this \
                         whole file and reset the addon's data",
                        String::from_utf8_lossy(name)
                    )
                } else {
                    format!(
                        "`-{}`: a minus sign must be followed by a number",
                        String::from_utf8_lossy(name)
                    )
                };
                Err(ParseError::new(
                    minus.start,
                    ErrorCode::NameAsValue,
                    message,
                ))
            }
            Tok::Eof => Err(self.truncated(tok.start)),
            _ => Err(ParseError::new(
                minus.start,
                ErrorCode::Expression,
                "a minus sign must be followed by a number: SavedVariables files hold plain \
                 values, not expressions",
            )),
        }
    }

    /// A name where a value is expected: `true`, `false` and `nil` are values, every other name
    /// is an error that says what the game would do with it.
    fn name_value(&mut self, tok: Token) -> Result<(Node, Exp), ParseError> {
        let (kind, constant) = match self.bytes(tok.start, tok.end) {
            b"true" => (Kind::Bool(true), Constant::Bool(true)),
            b"false" => (Kind::Bool(false), Constant::Bool(false)),
            b"nil" => (Kind::Nil, Constant::Nil),
            _ => {
                let pos = self.source.pos();
                let after = self.next().unwrap_or(Token {
                    tok: Tok::Eof,
                    start: pos,
                    end: pos,
                });
                self.source.set_pos(pos);
                return Err(self.name_error(tok, after));
            }
        };
        let node = Node {
            span: span(tok.start, tok.end),
            kind,
        };
        Ok((node, Exp::Lazy(constant)))
    }

    /// The error for a name used as a value, saying what the game would do with it.
    fn name_error(&self, tok: Token, after: Token) -> ParseError {
        let name = self.bytes(tok.start, tok.end);
        let shown = String::from_utf8_lossy(name);
        let message = if name == b"nan" && after.tok == Tok::LParen {
            "`nan(...)` is how a broken number was saved: Lua cannot evaluate it, so the game \
             would fail to load this whole file and reset the addon's data"
                .to_string()
        } else if name == b"inf" || name == b"nan" {
            format!(
                "`{shown}` is not a number Lua can read: the game would load it as nil and the \
                 value would be lost"
            )
        } else if name == b"function" {
            "functions cannot be stored in a SavedVariables file".to_string()
        } else if name == b"not" {
            "`not` starts an expression: SavedVariables files hold plain values, not expressions"
                .to_string()
        } else if matches!(after.tok, Tok::LParen | Tok::Str { .. } | Tok::LBrace) {
            format!(
                "`{shown}` is called like a function: SavedVariables files hold plain values, \
                 not code"
            )
        } else if after.tok == Tok::Op && self.bytes(after.start, after.start + 1) == b"." {
            format!(
                "`{shown}.` reads another variable (such as `math.huge`): the game would not \
                 load that as a value"
            )
        } else {
            format!(
                "`{shown}` is a name, not a value: SavedVariables files can only contain nil, \
                 true, false, numbers, text and tables (a name loads as nil and the value \
                 would be lost)"
            )
        };
        let code = if matches!(name, b"not" | b"function") {
            ErrorCode::Expression
        } else {
            ErrorCode::NameAsValue
        };
        ParseError::new(tok.start, code, message)
    }

    /// Whether the table open here is on the way to a kept path, so its keys are matched.
    fn parent_matches_paths(&self) -> bool {
        matches!(
            self.frames.last().map(|f| f.keep),
            Some(KeepState::Prefix { .. })
        )
    }

    fn key_text(&self, key: Node) -> KeyText {
        let Kind::Str {
            open,
            close,
            long,
            escaped,
        } = key.kind
        else {
            return KeyText::None;
        };
        if !self.parent_matches_paths() {
            return KeyText::None;
        }
        let (start, end) = (
            (key.span.start + open) as usize,
            (key.span.end - close) as usize,
        );
        if !escaped {
            return KeyText::At(start, end);
        }
        let body = self.bytes(start, end);
        KeyText::Owned(if long {
            decode_long(body).into_owned()
        } else {
            decode_quoted(body).into_owned()
        })
    }

    fn global_keep(&self, name: &[u8]) -> KeepState {
        match self.keep {
            Keep::All => KeepState::All,
            Keep::Nothing => KeepState::None,
            Keep::Paths(_) => {
                let all = if self.paths.len() >= 64 {
                    u64::MAX
                } else {
                    (1u64 << self.paths.len()) - 1
                };
                self.match_paths(
                    KeepState::Prefix {
                        depth: 0,
                        mask: all,
                    },
                    Some(name),
                )
            }
        }
    }

    fn child_keep(&self, key: Option<&[u8]>) -> KeepState {
        let parent = self.frames.last().map_or(KeepState::None, |f| f.keep);
        self.match_paths(parent, key)
    }

    fn match_paths(&self, parent: KeepState, key: Option<&[u8]>) -> KeepState {
        let KeepState::Prefix { depth, mask } = parent else {
            return parent;
        };
        let Some(key) = key else {
            return KeepState::None;
        };
        let mut next = 0u64;
        for (i, path) in self.paths.iter().enumerate() {
            if mask & (1 << i) == 0 || path.get(depth).map(|k| k.as_bytes()) != Some(key) {
                continue;
            }
            if path.len() == depth + 1 {
                return KeepState::All;
            }
            next |= 1 << i;
        }
        if next == 0 {
            KeepState::None
        } else {
            KeepState::Prefix {
                depth: depth + 1,
                mask: next,
            }
        }
    }

    /// Adds a string constant (a name, or a string without escapes, borrowed from the file);
    /// returns whether its index fits an operand (worked out only when `need_index`).
    fn string_constant(
        &mut self,
        at: usize,
        start: usize,
        end: usize,
        need_index: bool,
    ) -> Result<bool, ParseError> {
        let source = &self.source;
        self.codegen
            .string(
                source.bytes(start, end),
                || source.cow(start, end),
                need_index,
            )
            .map_err(|o| self.overflow(at, o))
    }

    /// Adds a quoted string's constant by the hash the lexer made as it read it: its raw
    /// `body` is decoded only if its bytes must be compared or kept.
    fn quoted_constant(
        &mut self,
        at: usize,
        start: usize,
        end: usize,
        escaped: bool,
        hash: u64,
        need_index: bool,
    ) -> Result<bool, ParseError> {
        let source = &self.source;
        let bytes = || {
            if escaped {
                let mut out = Vec::new();
                decode_quoted_into(source.bytes(start, end), &mut out);
                Cow::Owned(out)
            } else {
                source.cow(start, end)
            }
        };
        self.codegen
            .string_hashed(hash, bytes, need_index)
            .map_err(|o| self.overflow(at, o))
    }

    fn with_overflow(
        &mut self,
        at: usize,
        f: impl FnOnce(&mut Codegen<'a>) -> Result<(), Overflow>,
    ) -> Result<(), ParseError> {
        f(&mut self.codegen).map_err(|o| self.overflow(at, o))
    }

    fn overflow(&self, at: usize, what: Overflow) -> ParseError {
        overflow_error(at, what)
    }

    fn truncated(&self, at: usize) -> ParseError {
        let message = match self.frames.first() {
            Some(outer) => {
                let name = match outer.slot {
                    Slot::Global { name } => {
                        String::from_utf8_lossy(self.bytes(name.start as usize, name.end as usize))
                            .into_owned()
                    }
                    Slot::Field { .. } => "a table".to_string(),
                };
                let line = self.source.line_of(outer.open);
                format!(
                    "the file ends before `{name}` (opened at line {line}) is closed: it looks \
                     cut off, as when the game crashes while saving"
                )
            }
            None => "the file ends in the middle of a statement: it looks cut off, as when the \
                     game crashes while saving"
                .to_string(),
        };
        ParseError::new(at, ErrorCode::Truncated, message)
    }
}

fn overflow_error(at: usize, what: Overflow) -> ParseError {
    match what {
        Overflow::Registers => ParseError::new(
            at,
            ErrorCode::TooComplex,
            format!(
                "too many values are pending in the tables open here (Lua 5.1 has {} \
                 registers per file); Lua 5.1 refuses to load it (function or expression \
                 too complex)",
                super::limits::MAX_REGISTERS
            ),
        ),
        Overflow::Constants => ParseError::new(
            at,
            ErrorCode::TooManyConstants,
            format!(
                "the file has more than {} distinct strings and numbers; Lua 5.1 refuses \
                 to load it (constant table overflow)",
                super::limits::MAX_CONSTANTS
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_recount_finds_the_overflowing_constant() {
        let n = super::super::limits::MAX_CONSTANTS as usize;
        // `X` plus n strings: one constant too many, the last string passes the limit.
        let items: Vec<String> = (0..n).map(|i| format!("\"s{i}\"")).collect();
        let src = format!("X = {{{}}}", items.join(","));
        let last = src.rfind("\"s").unwrap();
        assert_eq!(exact_constant_overflow(src.as_bytes(), 0), Some(last));
        // Numbers count by signed value, names and strings share one pool.
        assert_eq!(exact_constant_overflow(b"X = {1, -1, 1, X = 'X'}", 0), None);
    }
}
