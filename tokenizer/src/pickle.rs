//! nanochat's `tokenizer.pkl` without Python: a small, data-only pickle reader.
//!
//! nanochat saves its tokenizer with `pickle.dump(enc, f)`, where `enc` is a
//! `tiktoken.core.Encoding`. tiktoken pickles an unregistered encoding through
//! `Encoding.__getstate__` as the class (`GLOBAL`/`STACK_GLOBAL` `tiktoken.core Encoding`),
//! `NEWOBJ` with no arguments, and `BUILD` with the state dict
//! `{"name", "pat_str", "mergeable_ranks": {bytes: rank}, "special_tokens": {str: id}}`.
//!
//! [`parse`] interprets the opcodes Python's protocols 2–5 emit for such data (strings, bytes,
//! integers, tuples, lists, dicts, the memo, frames) into a [`Value`] tree. It never executes
//! anything: a global reference only becomes a [`Value::Global`] marker, and only the names on a
//! short allow-list are accepted — `tiktoken.core.Encoding`, and the helpers pickle itself uses
//! to spell plain data (`_codecs.encode` for `bytes` under protocol 2, `copyreg._reconstructor`
//! and `builtins.object` for protocols 0–1, `builtins.bytes` for an empty `bytes`). Each of those
//! helpers is interpreted by this reader, not called. Anything else (`os.system`,
//! `builtins.eval`, …) is [`PickleError::ForbiddenGlobal`], raised at the opcode that names it,
//! before any argument is read. Lengths are checked against the data before anything is
//! allocated.
//!
//! [`load_tokenizer`] turns the pickled encoding into a [`Tokenizer`] after checking that the
//! ranks are a byte-level BPE vocabulary (all 256 single bytes, ranks exactly `0..n`) and that
//! the special tokens follow the ranks. nanochat's split pattern becomes [`SplitPattern::Gpt4`];
//! any other pattern is kept as a custom regex.

use std::path::Path;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::pattern::SplitPattern;
use crate::special::NANOCHAT_SPECIALS;
use crate::tokenizer::Tokenizer;

/// The file name nanochat saves its tokenizer under.
pub const PICKLE_FILE: &str = "tokenizer.pkl";

/// The newest pickle protocol this reader knows.
pub const HIGHEST_PROTOCOL: u8 = 5;

/// A value read from a pickle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer (pickles of wider integers are refused).
    Int(i64),
    /// A `str`.
    Str(String),
    /// `bytes` (or a `bytearray`).
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list.
    List(Vec<Value>),
    /// A dict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A reference to an allowed class or function; never resolved or called.
    Global { module: String, name: String },
    /// An instance of an allowed class: created (`NEWOBJ`, `copyreg._reconstructor`) with
    /// `args`, then given `state` by `BUILD`.
    Object {
        module: String,
        name: String,
        args: Vec<Value>,
        state: Option<Box<Value>>,
    },
}

/// Why a pickle could not be read. Offsets are byte positions in the data, at the opcode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PickleError {
    /// The data ends inside an opcode or before `STOP`.
    #[error("byte {offset}: the data ends inside {opcode} (truncated file?)")]
    Truncated { offset: usize, opcode: &'static str },
    /// A byte that is no pickle opcode.
    #[error("byte {offset}: 0x{byte:02x} is not a pickle opcode (corrupt file, or not a pickle)")]
    UnknownOpcode { offset: usize, byte: u8 },
    /// A pickle opcode this data-only reader does not interpret.
    #[error("byte {offset}: opcode {opcode} is not supported by this data-only pickle reader")]
    Unsupported { offset: usize, opcode: &'static str },
    /// A reference to a class or function outside the allow-list; nothing was called.
    #[error(
        "byte {offset}: {opcode} refers to `{module}.{name}`, which is refused: only \
         tiktoken.core.Encoding and plain data are accepted, and nothing is ever executed"
    )]
    ForbiddenGlobal {
        offset: usize,
        opcode: &'static str,
        module: String,
        name: String,
    },
    /// An opcode whose operands or stack do not make sense.
    #[error("byte {offset}: {opcode}: {reason}")]
    Malformed {
        offset: usize,
        opcode: &'static str,
        reason: String,
    },
    /// The pickle is well formed but is not a pickled tiktoken `Encoding`.
    #[error("not a pickled tiktoken Encoding: {0}")]
    Shape(String),
}

type PResult<T> = std::result::Result<T, PickleError>;

/// The names of all pickle opcodes (protocols 0–5), for messages.
fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

/// The class nanochat pickles.
const ENCODING: (&str, &str) = ("tiktoken.core", "Encoding");

/// Globals a pickle may name (Python 3 spellings and the Python 2 ones protocol ≤ 2 writes).
const ALLOWED_GLOBALS: [(&str, &str); 8] = [
    ENCODING,
    ("_codecs", "encode"),
    ("copyreg", "_reconstructor"),
    ("copy_reg", "_reconstructor"),
    ("builtins", "object"),
    ("__builtin__", "object"),
    ("builtins", "bytes"),
    ("__builtin__", "bytes"),
];

/// A node of the object graph while reading: containers refer to other nodes by index, so that
/// the memo, `DUP` and later `SETITEMS` on a memoized dict share one object, as in Python.
#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<usize>),
    List(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Global(String, String),
    Object {
        module: String,
        name: String,
        args: Vec<usize>,
        state: Option<usize>,
    },
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset and name of the opcode being interpreted.
    at: usize,
    op: &'static str,
    nodes: Vec<Node>,
    stack: Vec<usize>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    memo: FxHashMap<u32, usize>,
}

impl<'a> Machine<'a> {
    fn malformed(&self, reason: impl Into<String>) -> PickleError {
        PickleError::Malformed {
            offset: self.at,
            opcode: self.op,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> PResult<&'a [u8]> {
        if n > self.data.len() - self.pos {
            return Err(PickleError::Truncated {
                offset: self.at,
                opcode: self.op,
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn take_array<const N: usize>(&mut self) -> PResult<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    fn u8(&mut self) -> PResult<u8> {
        Ok(self.take_array::<1>()?[0])
    }

    fn u32(&mut self) -> PResult<u32> {
        Ok(u32::from_le_bytes(self.take_array()?))
    }

    /// A length operand of `bytes` bytes (little-endian), as `usize`.
    fn len(&mut self, bytes: usize) -> PResult<usize> {
        let n = match bytes {
            1 => u64::from(self.u8()?),
            4 => u64::from(self.u32()?),
            _ => u64::from_le_bytes(self.take_array()?),
        };
        usize::try_from(n).map_err(|_| self.malformed(format!("length {n} is too large")))
    }

    fn line(&mut self) -> PResult<String> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated {
                offset: self.at,
                opcode: self.op,
            })?;
        self.pos += end + 1;
        String::from_utf8(rest[..end].to_vec()).map_err(|_| self.malformed("name is not UTF-8"))
    }

    fn push(&mut self, node: Node) {
        self.nodes.push(node);
        self.stack.push(self.nodes.len() - 1);
    }

    /// The lowest stack index the current opcode may pop (the innermost open mark).
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> PResult<usize> {
        if self.stack.len() <= self.floor() {
            return Err(self.malformed("the stack is empty"));
        }
        Ok(self.stack.pop().expect("non-empty"))
    }

    fn top(&self) -> PResult<usize> {
        if self.stack.len() <= self.floor() {
            return Err(self.malformed("the stack is empty"));
        }
        Ok(*self.stack.last().expect("non-empty"))
    }

    /// Everything pushed since the innermost `MARK`, which is closed.
    fn pop_mark(&mut self) -> PResult<Vec<usize>> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.malformed("no MARK is open"))?;
        Ok(self.stack.split_off(m))
    }

    fn pop_n(&mut self, n: usize) -> PResult<Vec<usize>> {
        if self.stack.len() < self.floor() + n {
            return Err(self.malformed(format!("needs {n} items on the stack")));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn str_of(&self, id: usize) -> Option<&str> {
        match &self.nodes[id] {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    fn global(&mut self, module: String, name: String) -> PResult<()> {
        if !ALLOWED_GLOBALS.contains(&(module.as_str(), name.as_str())) {
            return Err(PickleError::ForbiddenGlobal {
                offset: self.at,
                opcode: self.op,
                module,
                name,
            });
        }
        self.push(Node::Global(module, name));
        Ok(())
    }

    fn global_of(&self, id: usize) -> PResult<(&str, &str)> {
        match &self.nodes[id] {
            Node::Global(m, n) => Ok((m, n)),
            _ => Err(self.malformed("the callable is not a global")),
        }
    }

    fn tuple_of(&self, id: usize) -> PResult<Vec<usize>> {
        match &self.nodes[id] {
            Node::Tuple(items) => Ok(items.clone()),
            _ => Err(self.malformed("the arguments are not a tuple")),
        }
    }

    fn new_object(&mut self, cls: usize, args: Vec<usize>) -> PResult<()> {
        let (module, name) = self.global_of(cls)?;
        if (module, name) != ENCODING {
            return Err(self.malformed(format!(
                "creating a `{module}.{name}` instance; only {}.{} objects are read",
                ENCODING.0, ENCODING.1
            )));
        }
        let (module, name) = (module.to_string(), name.to_string());
        self.push(Node::Object {
            module,
            name,
            args,
            state: None,
        });
        Ok(())
    }

    /// `REDUCE`: only the allowed helpers, each interpreted here.
    fn reduce(&mut self) -> PResult<()> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let args = self.tuple_of(args)?;
        let (module, name) = self.global_of(callable)?;
        match (module, name) {
            // Protocol ≤ 2 spells bytes as `_codecs.encode(str, "latin1")`.
            ("_codecs", "encode") => {
                let [text, codec] = args[..] else {
                    return Err(self.malformed("_codecs.encode needs 2 arguments"));
                };
                let (Some(text), Some(codec)) = (self.str_of(text), self.str_of(codec)) else {
                    return Err(self.malformed("_codecs.encode needs 2 strings"));
                };
                if !matches!(codec, "latin1" | "latin-1" | "iso-8859-1") {
                    return Err(self.malformed(format!("_codecs.encode with codec `{codec}`")));
                }
                let bytes: Option<Vec<u8>> = text
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).ok())
                    .collect();
                let bytes = bytes.ok_or_else(|| self.malformed("a latin-1 string above U+00FF"))?;
                self.push(Node::Bytes(bytes));
            }
            ("builtins" | "__builtin__", "bytes") if args.is_empty() => {
                self.push(Node::Bytes(Vec::new()));
            }
            // Protocols 0–1: `copyreg._reconstructor(cls, object, None)`.
            ("copyreg" | "copy_reg", "_reconstructor") => {
                let [cls, base, state] = args[..] else {
                    return Err(self.malformed("_reconstructor needs 3 arguments"));
                };
                let base_ok = matches!(
                    self.global_of(base)?,
                    ("builtins" | "__builtin__", "object")
                );
                if !base_ok || !matches!(self.nodes[state], Node::None) {
                    return Err(self.malformed("_reconstructor with a base other than object"));
                }
                self.new_object(cls, Vec::new())?;
            }
            (module, name) => {
                return Err(self.malformed(format!("calling `{module}.{name}` is not supported")));
            }
        }
        Ok(())
    }

    fn set_items(&mut self, dict: usize, items: &[usize]) -> PResult<()> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed("an odd number of items for a dict"));
        }
        let pairs = items.chunks_exact(2).map(|kv| (kv[0], kv[1]));
        match &mut self.nodes[dict] {
            Node::Dict(entries) => {
                entries.extend(pairs);
                Ok(())
            }
            _ => Err(self.malformed("the target is not a dict")),
        }
    }

    fn append(&mut self, list: usize, items: Vec<usize>) -> PResult<()> {
        match &mut self.nodes[list] {
            Node::List(v) => {
                v.extend(items);
                Ok(())
            }
            _ => Err(self.malformed("the target is not a list")),
        }
    }

    fn int_le(&mut self, n: usize) -> PResult<()> {
        let bytes = self.take(n)?;
        if n > 8 {
            return Err(self.malformed(format!("a {n}-byte integer is wider than 64 bits")));
        }
        let v = if n == 0 {
            0
        } else {
            let mut b = [if bytes[n - 1] & 0x80 != 0 { 0xff } else { 0 }; 8];
            b[..n].copy_from_slice(bytes);
            i64::from_le_bytes(b)
        };
        self.push(Node::Int(v));
        Ok(())
    }

    fn string(&mut self, len_bytes: usize) -> PResult<()> {
        let n = self.len(len_bytes)?;
        let raw = self.take(n)?;
        let s = std::str::from_utf8(raw)
            .map_err(|_| self.malformed("a string that is not UTF-8 (a lone surrogate?)"))?;
        self.push(Node::Str(s.to_string()));
        Ok(())
    }

    fn bytes(&mut self, len_bytes: usize) -> PResult<()> {
        let n = self.len(len_bytes)?;
        let raw = self.take(n)?.to_vec();
        self.push(Node::Bytes(raw));
        Ok(())
    }

    fn memo_put(&mut self, index: u32) -> PResult<()> {
        let top = self.top()?;
        self.memo.insert(index, top);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> PResult<()> {
        let id = *self
            .memo
            .get(&index)
            .ok_or_else(|| self.malformed(format!("memo slot {index} is empty")))?;
        self.stack.push(id);
        Ok(())
    }

    /// Runs to `STOP`; returns the node it pops.
    fn run(&mut self) -> PResult<usize> {
        loop {
            self.at = self.pos;
            self.op = "the pickle (no STOP opcode)";
            let op = self.u8()?;
            self.op = opcode_name(op).ok_or(PickleError::UnknownOpcode {
                offset: self.at,
                byte: op,
            })?;
            match op {
                0x80 => {
                    let v = self.u8()?;
                    if v > HIGHEST_PROTOCOL {
                        return Err(self
                            .malformed(format!("protocol {v} is newer than {HIGHEST_PROTOCOL}")));
                    }
                }
                0x95 => {
                    let n = self.len(8)?;
                    if n > self.data.len() - self.pos {
                        return Err(PickleError::Truncated {
                            offset: self.at,
                            opcode: self.op,
                        });
                    }
                }
                b'.' => {
                    let root = self.pop()?;
                    if self.pos < self.data.len() {
                        tracing::debug!(
                            trailing = self.data.len() - self.pos,
                            "pickle: ignoring bytes after STOP"
                        );
                    }
                    return Ok(root);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    if self.stack.len() > self.floor() {
                        self.stack.pop();
                    } else {
                        self.pop_mark()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?;
                    self.stack.push(top);
                }
                b'N' => self.push(Node::None),
                0x88 => self.push(Node::Bool(true)),
                0x89 => self.push(Node::Bool(false)),
                b'J' => self.int_le(4)?,
                b'K' => {
                    let v = self.u8()?;
                    self.push(Node::Int(i64::from(v)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take_array()?);
                    self.push(Node::Int(i64::from(v)));
                }
                0x8a => {
                    let n = self.len(1)?;
                    self.int_le(n)?;
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.take_array()?);
                    let n = usize::try_from(n).map_err(|_| self.malformed("negative length"))?;
                    self.int_le(n)?;
                }
                0x8c => self.string(1)?,
                b'X' => self.string(4)?,
                0x8d => self.string(8)?,
                b'C' => self.bytes(1)?,
                b'B' => self.bytes(4)?,
                0x8e | 0x96 => self.bytes(8)?,
                b')' => self.push(Node::Tuple(Vec::new())),
                0x85..=0x87 => {
                    let items = self.pop_n(usize::from(op - 0x84))?;
                    self.push(Node::Tuple(items));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items));
                }
                b']' => self.push(Node::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    let list = self.top()?;
                    self.append(list, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.append(list, items)?;
                }
                b'}' => self.push(Node::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Dict(Vec::new()));
                    let dict = self.top()?;
                    self.set_items(dict, &items)?;
                }
                b's' => {
                    let kv = self.pop_n(2)?;
                    let dict = self.top()?;
                    self.set_items(dict, &kv)?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?;
                    self.set_items(dict, &items)?;
                }
                0x94 => {
                    let index = u32::try_from(self.memo.len())
                        .map_err(|_| self.malformed("memo is full"))?;
                    self.memo_put(index)?;
                }
                b'q' => {
                    let i = self.u8()?;
                    self.memo_put(u32::from(i))?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()?;
                    self.memo_get(u32::from(i))?;
                }
                b'j' => {
                    let i = self.u32()?;
                    self.memo_get(i)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Some(module), Some(name)) = (self.str_of(module), self.str_of(name))
                    else {
                        return Err(self.malformed("module and name must be strings"));
                    };
                    let (module, name) = (module.to_string(), name.to_string());
                    self.global(module, name)?;
                }
                b'R' => self.reduce()?,
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let args = self.tuple_of(args)?;
                    self.new_object(cls, args)?;
                }
                0x92 => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    if !matches!(&self.nodes[kwargs], Node::Dict(d) if d.is_empty()) {
                        return Err(self.malformed("keyword arguments are not supported"));
                    }
                    let args = self.tuple_of(args)?;
                    self.new_object(cls, args)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?;
                    match &mut self.nodes[obj] {
                        Node::Object {
                            state: s @ None, ..
                        } => *s = Some(state),
                        Node::Object { .. } => {
                            return Err(self.malformed("the object already has a state"));
                        }
                        _ => return Err(self.malformed("the target is not an object")),
                    }
                }
                _ => {
                    return Err(PickleError::Unsupported {
                        offset: self.at,
                        opcode: self.op,
                    });
                }
            }
        }
    }

    /// The value tree under `id`. `budget` bounds the values produced, so that shared references
    /// cannot expand a small file into an enormous tree; `depth` bounds nesting (and cycles).
    fn value(&self, id: usize, depth: usize, budget: &mut usize) -> PResult<Value> {
        const MAX_DEPTH: usize = 100;
        if depth > MAX_DEPTH {
            return Err(PickleError::Shape(format!(
                "nested deeper than {MAX_DEPTH} levels (a cycle?)"
            )));
        }
        if *budget == 0 {
            return Err(PickleError::Shape(
                "shared references expand to more values than the file has bytes".into(),
            ));
        }
        *budget -= 1;
        let all = |ids: &[usize], budget: &mut usize| -> PResult<Vec<Value>> {
            ids.iter()
                .map(|&i| self.value(i, depth + 1, budget))
                .collect()
        };
        Ok(match &self.nodes[id] {
            Node::None => Value::None,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Int(*i),
            Node::Str(s) => Value::Str(s.clone()),
            Node::Bytes(b) => Value::Bytes(b.clone()),
            Node::Tuple(items) => Value::Tuple(all(items, budget)?),
            Node::List(items) => Value::List(all(items, budget)?),
            Node::Dict(entries) => Value::Dict(
                entries
                    .iter()
                    .map(|&(k, v)| {
                        Ok((
                            self.value(k, depth + 1, budget)?,
                            self.value(v, depth + 1, budget)?,
                        ))
                    })
                    .collect::<PResult<_>>()?,
            ),
            Node::Global(module, name) => Value::Global {
                module: module.clone(),
                name: name.clone(),
            },
            Node::Object {
                module,
                name,
                args,
                state,
            } => Value::Object {
                module: module.clone(),
                name: name.clone(),
                args: all(args, budget)?,
                state: match state {
                    Some(s) => Some(Box::new(self.value(*s, depth + 1, budget)?)),
                    None => None,
                },
            },
        })
    }
}

/// Reads a pickle into a value tree without executing anything.
///
/// # Errors
/// Truncated or corrupt data, an opcode outside the data-only subset, a global outside the
/// allow-list ([`PickleError::ForbiddenGlobal`]) — each with its byte offset.
pub fn parse(data: &[u8]) -> Result<Value, PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        at: 0,
        op: "",
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: FxHashMap::default(),
    };
    let root = m.run()?;
    let mut budget = data.len() + m.nodes.len();
    m.value(root, 0, &mut budget)
}

/// The state of a pickled `tiktoken.core.Encoding`, as `Encoding.__getstate__` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiktokenEncoding {
    /// The encoding's name (`rustbpe` for nanochat).
    pub name: String,
    /// The split regex.
    pub pat_str: String,
    /// Mergeable token bytes and their ranks, in file order.
    pub mergeable_ranks: Vec<(Vec<u8>, i64)>,
    /// Special token strings and their ids, in file order.
    pub special_tokens: Vec<(String, i64)>,
    /// `explicit_n_vocab`, when the state has it.
    pub explicit_n_vocab: Option<i64>,
}

fn shape(reason: impl Into<String>) -> PickleError {
    PickleError::Shape(reason.into())
}

impl TiktokenEncoding {
    /// Reads a pickled `tiktoken.core.Encoding`.
    ///
    /// # Errors
    /// As [`parse`]; [`PickleError::Shape`] when the pickle holds something else (another
    /// object, a registered encoding pickled by name, a state without ranks).
    pub fn from_pickle(data: &[u8]) -> Result<Self, PickleError> {
        Self::from_value(&parse(data)?)
    }

    /// The encoding in an already parsed pickle.
    ///
    /// # Errors
    /// As [`TiktokenEncoding::from_pickle`].
    pub fn from_value(v: &Value) -> Result<Self, PickleError> {
        let Value::Object {
            module,
            name,
            state,
            ..
        } = v
        else {
            return Err(shape("the pickle holds no object"));
        };
        if (module.as_str(), name.as_str()) != ENCODING {
            return Err(shape(format!("the pickled object is a `{module}.{name}`")));
        }
        let entries = match state.as_deref() {
            Some(Value::Dict(entries)) => entries,
            Some(Value::Str(registered)) => {
                return Err(shape(format!(
                    "it is tiktoken's registered encoding `{registered}`, pickled by name only: \
                     the file holds no ranks"
                )));
            }
            Some(_) => return Err(shape("the state is not a dict")),
            None => return Err(shape("the object has no state (no BUILD)")),
        };
        let mut name = None;
        let mut pat_str = None;
        let mut mergeable_ranks = None;
        let mut special_tokens = None;
        let mut explicit_n_vocab = None;
        for (k, v) in entries {
            let Value::Str(k) = k else {
                return Err(shape("a state key is not a string"));
            };
            match (k.as_str(), v) {
                ("name", Value::Str(s)) => name = Some(s.clone()),
                ("pat_str", Value::Str(s)) => pat_str = Some(s.clone()),
                ("mergeable_ranks", Value::Dict(d)) => {
                    let ranks = d
                        .iter()
                        .map(|(t, r)| match (t, r) {
                            (Value::Bytes(t), Value::Int(r)) => Ok((t.clone(), *r)),
                            _ => Err(shape("mergeable_ranks must map bytes to int")),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    mergeable_ranks = Some(ranks);
                }
                ("special_tokens", Value::Dict(d)) => {
                    let specials = d
                        .iter()
                        .map(|(s, id)| match (s, id) {
                            (Value::Str(s), Value::Int(id)) => Ok((s.clone(), *id)),
                            _ => Err(shape("special_tokens must map str to int")),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    special_tokens = Some(specials);
                }
                ("explicit_n_vocab", Value::Int(n)) => explicit_n_vocab = Some(*n),
                ("explicit_n_vocab", Value::None) => {}
                (
                    "name" | "pat_str" | "mergeable_ranks" | "special_tokens" | "explicit_n_vocab",
                    _,
                ) => {
                    return Err(shape(format!("`{k}` has the wrong type")));
                }
                (other, _) => tracing::debug!(key = other, "tokenizer.pkl: ignoring state key"),
            }
        }
        Ok(TiktokenEncoding {
            name: name.ok_or_else(|| shape("the state has no `name`"))?,
            pat_str: pat_str.ok_or_else(|| shape("the state has no `pat_str`"))?,
            mergeable_ranks: mergeable_ranks
                .ok_or_else(|| shape("the state has no `mergeable_ranks`"))?,
            special_tokens: special_tokens.unwrap_or_default(),
            explicit_n_vocab,
        })
    }

    /// Builds the [`Tokenizer`]: ranks become ids, the pattern maps to a built-in one when it is
    /// exactly that pattern (nanochat's is [`SplitPattern::Gpt4`]), specials keep their ids.
    ///
    /// # Errors
    /// [`Error::Vocab`] when the ranks are not exactly `0..n`, a single byte is missing, tokens
    /// repeat, or the special ids do not follow the ranks in order; [`Error::Pattern`] for a
    /// regex that does not compile.
    pub fn to_tokenizer(&self) -> Result<Tokenizer> {
        let n = self.mergeable_ranks.len();
        let mut tokens: Vec<Option<Vec<u8>>> = vec![None; n];
        for (bytes, rank) in &self.mergeable_ranks {
            let slot = usize::try_from(*rank)
                .ok()
                .and_then(|r| tokens.get_mut(r))
                .ok_or_else(|| {
                    Error::Vocab(format!(
                        "rank {rank} is outside 0..{n} (ranks must be dense, rank == id)"
                    ))
                })?;
            if slot.replace(bytes.clone()).is_some() {
                return Err(Error::Vocab(format!("rank {rank} appears twice")));
            }
        }
        // n ranks inside 0..n without repeats cover every slot.
        let tokens: Vec<Vec<u8>> = tokens.into_iter().map(|t| t.expect("dense")).collect();
        let mut specials: Vec<(&str, i64)> = self
            .special_tokens
            .iter()
            .map(|(s, id)| (s.as_str(), *id))
            .collect();
        specials.sort_by_key(|&(_, id)| id);
        for (i, (s, id)) in specials.iter().enumerate() {
            let want = n + i;
            if usize::try_from(*id).ok() != Some(want) {
                return Err(Error::Vocab(format!(
                    "special token `{s}` has id {id}, expected {want}: special ids must follow \
                     the {n} mergeable ranks without gaps"
                )));
            }
        }
        let names: Vec<&str> = specials.iter().map(|&(s, _)| s).collect();
        if names != NANOCHAT_SPECIALS {
            tracing::warn!(
                specials = ?names,
                "tokenizer.pkl: special tokens differ from nanochat's nine; loaded as given"
            );
        }
        let total = n + names.len();
        if let Some(e) = self.explicit_n_vocab
            && usize::try_from(e).ok() != Some(total)
        {
            return Err(Error::Vocab(format!(
                "explicit_n_vocab is {e}, but there are {total} tokens"
            )));
        }
        let pattern = SplitPattern::from_regex(&self.pat_str);
        if matches!(pattern, SplitPattern::Custom(_)) {
            tracing::info!(
                "tokenizer.pkl: the split pattern is not a built-in one; using it as a custom regex"
            );
        }
        Tokenizer::from_tokens(tokens, pattern, &names)
    }
}

/// Loads nanochat's `tokenizer.pkl` (a pickled `tiktoken.core.Encoding`) as a [`Tokenizer`].
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Pickle`] for a pickle this reader
/// refuses (with the opcode and byte offset); [`Error::Format`] when the vocabulary in it is not
/// usable — each with the path.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let enc = TiktokenEncoding::from_pickle(&data).map_err(|source| Error::Pickle {
        path: path.to_path_buf(),
        source,
    })?;
    let tok = enc.to_tokenizer().map_err(|e| match e {
        Error::Vocab(reason) => Error::format(path, None, format!("invalid vocabulary: {reason}")),
        Error::Pattern { pattern, reason } => Error::format(
            path,
            None,
            format!("split pattern `{pattern}` does not compile: {reason}"),
        ),
        other => other,
    })?;
    tracing::info!(
        path = %path.display(),
        name = %enc.name,
        vocab_size = tok.vocab_size(),
        pattern = %tok.pattern(),
        "loaded a pickled tiktoken encoding"
    );
    Ok(tok)
}
