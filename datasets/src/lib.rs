//! Canonical dataset records for nanochat-jp.
//!
//! Every dataset in the catalog holds one of four record kinds ([`Kind`]): [`Document`],
//! [`Conversation`] (messages made of text, python and python_output parts), [`MultipleChoice`]
//! and [`MathProblem`]. This crate defines them, their Arrow schemas, streaming Parquet and JSONL
//! I/O, validation with typed reasons, and the conversions nanochat applies to MMLU- and
//! GSM8K-style data.
//!
//! ```
//! use njp_datasets::{MathProblem, convert, validate};
//! let m = MathProblem {
//!     id: "1".into(),
//!     question: "りんごが3個と5個あります。全部で何個？".into(),
//!     solution: "3+5=<<3+5=8>>8個".into(),
//!     answer: "8".into(),
//!     source: String::new(),
//! };
//! validate::math(&m)?;
//! let conv = convert::math_to_conversation(&m);
//! assert_eq!(conv.messages[1].parts[1].text, "3+5");
//! # Ok::<(), njp_datasets::validate::Invalid>(())
//! ```

pub mod adapt;
pub mod calc;
pub mod convert;
pub mod records;
pub mod validate;

pub use records::{
    Conversation, Document, Kind, MathProblem, Message, MultipleChoice, Part, PartKind, Record,
    Role,
};
pub mod io;
pub mod read;
pub mod schema;
pub mod svg;
