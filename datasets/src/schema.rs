//! Arrow schemas of the canonical records, and conversion between records and record batches.
//!
//! | kind | columns |
//! |---|---|
//! | document | `id`, `text`, `source`, `meta` (JSON text, nullable) |
//! | conversation | `id`, `messages: list<struct<role, parts: list<struct<kind, text>>>>`, `source`, `meta` |
//! | mc | `id`, `question`, `choices: list<utf8>`, `answer: uint32`, `subject` (nullable), `source` |
//! | math | `id`, `question`, `solution`, `answer`, `source` |
//!
//! Nested columns keep conversations queryable in SQL (`unnest(messages)`, `array_length`,
//! `messages[1]['parts'][1]['text']`). `meta` is JSON text so that any upstream extras survive.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, ListArray, RecordBatch, StringArray, StringBuilder,
    StructArray, UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, UInt32Type};

use crate::records::{
    Conversation, Document, Kind, MathProblem, Message, MultipleChoice, Part, Record,
};

/// Why a record batch does not hold records of the expected kind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    #[error("missing column `{column}` (a {kind} dataset has columns {expected})")]
    MissingColumn {
        column: String,
        kind: Kind,
        expected: String,
    },
    #[error("column `{column}` has type {found}, expected {expected}")]
    ColumnType {
        column: String,
        found: DataType,
        expected: DataType,
    },
    #[error("row {row}: column `{column}` is null")]
    Null { row: usize, column: String },
    #[error("row {row}: {reason}")]
    BadValue { row: usize, reason: String },
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn part_fields() -> Fields {
    Fields::from(vec![utf8("kind", false), utf8("text", false)])
}

fn message_fields() -> Fields {
    Fields::from(vec![
        utf8("role", false),
        Field::new(
            "parts",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(part_fields()),
                false,
            ))),
            false,
        ),
    ])
}

fn messages_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(message_fields()),
        false,
    )))
}

fn choices_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, false)))
}

static SCHEMAS: LazyLock<[SchemaRef; 4]> = LazyLock::new(|| {
    [
        Arc::new(Schema::new(vec![
            utf8("id", false),
            utf8("text", false),
            utf8("source", false),
            utf8("meta", true),
        ])),
        Arc::new(Schema::new(vec![
            utf8("id", false),
            Field::new("messages", messages_type(), false),
            utf8("source", false),
            utf8("meta", true),
        ])),
        Arc::new(Schema::new(vec![
            utf8("id", false),
            utf8("question", false),
            Field::new("choices", choices_type(), false),
            Field::new("answer", DataType::UInt32, false),
            utf8("subject", true),
            utf8("source", false),
        ])),
        Arc::new(Schema::new(vec![
            utf8("id", false),
            utf8("question", false),
            utf8("solution", false),
            utf8("answer", false),
            utf8("source", false),
        ])),
    ]
});

/// The Arrow schema of a kind's records.
pub fn schema(kind: Kind) -> SchemaRef {
    let i = match kind {
        Kind::Document => 0,
        Kind::Conversation => 1,
        Kind::MultipleChoice => 2,
        Kind::Math => 3,
    };
    SCHEMAS[i].clone()
}

/// The kind whose schema has exactly these column names, if any (used to type SQL results).
pub fn kind_of_schema(schema: &Schema) -> Option<Kind> {
    Kind::ALL.into_iter().find(|&k| {
        let want = self::schema(k);
        want.fields().len() == schema.fields().len()
            && want
                .fields()
                .iter()
                .zip(schema.fields())
                .all(|(a, b)| a.name() == b.name())
    })
}

/// Accumulates records of one kind into column builders; [`BatchBuilder::finish`] makes a
/// batch. Texts are appended straight into the Arrow buffers (no per-string copy).
#[derive(Debug)]
pub struct BatchBuilder {
    kind: Kind,
    rows: usize,
    bytes: usize,
    ids: StringBuilder,
    sources: StringBuilder,
    metas: StringBuilder,
    // document
    texts: StringBuilder,
    // conversation: flattened parts and offsets
    msg_lens: Vec<usize>,
    roles: StringBuilder,
    part_lens: Vec<usize>,
    part_kinds: StringBuilder,
    part_texts: StringBuilder,
    // mc and math
    questions: StringBuilder,
    choice_lens: Vec<usize>,
    choices: StringBuilder,
    answers_idx: Vec<u32>,
    subjects: StringBuilder,
    solutions: StringBuilder,
    answers: StringBuilder,
}

impl BatchBuilder {
    pub fn new(kind: Kind) -> Self {
        BatchBuilder {
            kind,
            rows: 0,
            bytes: 0,
            ids: StringBuilder::new(),
            sources: StringBuilder::new(),
            metas: StringBuilder::new(),
            texts: StringBuilder::new(),
            msg_lens: Vec::new(),
            roles: StringBuilder::new(),
            part_lens: Vec::new(),
            part_kinds: StringBuilder::new(),
            part_texts: StringBuilder::new(),
            questions: StringBuilder::new(),
            choice_lens: Vec::new(),
            choices: StringBuilder::new(),
            answers_idx: Vec::new(),
            subjects: StringBuilder::new(),
            solutions: StringBuilder::new(),
            answers: StringBuilder::new(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Rows pushed since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Approximate bytes of text held (to flush batches by size, not only by rows).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a record. Panics if its kind differs from the builder's (a programming error).
    pub fn push(&mut self, record: &Record) {
        assert_eq!(
            record.kind(),
            self.kind,
            "record kind does not match the batch builder"
        );
        self.rows += 1;
        match record {
            Record::Document(d) => self.push_document(d),
            Record::Conversation(c) => self.push_conversation(c),
            Record::MultipleChoice(mc) => self.push_mc(mc),
            Record::Math(m) => self.push_math(m),
        }
    }

    fn meta_text(&mut self, meta: &Option<serde_json::Value>) {
        let m = meta
            .as_ref()
            .filter(|v| !v.is_null())
            .map(|v| v.to_string());
        self.bytes += m.as_ref().map_or(0, String::len);
        self.metas.append_option(m);
    }

    fn push_document(&mut self, d: &Document) {
        self.bytes += d.id.len() + d.text.len() + d.source.len();
        self.ids.append_value(&d.id);
        self.texts.append_value(&d.text);
        self.sources.append_value(&d.source);
        self.meta_text(&d.meta);
    }

    fn push_conversation(&mut self, c: &Conversation) {
        self.bytes += c.id.len() + c.source.len();
        self.ids.append_value(&c.id);
        self.msg_lens.push(c.messages.len());
        for m in &c.messages {
            self.roles.append_value(m.role.as_str());
            self.part_lens.push(m.parts.len());
            for p in &m.parts {
                self.bytes += p.text.len() + 8;
                self.part_kinds.append_value(p.kind.as_str());
                self.part_texts.append_value(&p.text);
            }
        }
        self.sources.append_value(&c.source);
        self.meta_text(&c.meta);
    }

    fn push_mc(&mut self, mc: &MultipleChoice) {
        self.bytes += mc.id.len() + mc.question.len() + mc.source.len();
        self.ids.append_value(&mc.id);
        self.questions.append_value(&mc.question);
        self.choice_lens.push(mc.choices.len());
        for c in &mc.choices {
            self.bytes += c.len();
            self.choices.append_value(c);
        }
        self.answers_idx.push(mc.answer);
        self.subjects.append_option(mc.subject.as_deref());
        self.sources.append_value(&mc.source);
    }

    fn push_math(&mut self, m: &MathProblem) {
        self.bytes +=
            m.id.len() + m.question.len() + m.solution.len() + m.answer.len() + m.source.len();
        self.ids.append_value(&m.id);
        self.questions.append_value(&m.question);
        self.solutions.append_value(&m.solution);
        self.answers.append_value(&m.answer);
        self.sources.append_value(&m.source);
    }

    /// An empty builder of the same kind with room for a batch a quarter larger than this one:
    /// batches of a dataset are alike, and buffers that grow by doubling copy what they hold at
    /// each step and touch fresh memory every time.
    fn sized_like(&self) -> Self {
        let strings = |s: &StringBuilder| {
            let more = |n: usize| (n + n / 4).min(crate::io::BATCH_BYTES);
            StringBuilder::with_capacity(more(s.len()), more(s.values_slice().len()))
        };
        let lens = |v: &Vec<usize>| Vec::with_capacity(v.len() + v.len() / 4);
        BatchBuilder {
            kind: self.kind,
            rows: 0,
            bytes: 0,
            ids: strings(&self.ids),
            sources: strings(&self.sources),
            metas: strings(&self.metas),
            texts: strings(&self.texts),
            msg_lens: lens(&self.msg_lens),
            roles: strings(&self.roles),
            part_lens: lens(&self.part_lens),
            part_kinds: strings(&self.part_kinds),
            part_texts: strings(&self.part_texts),
            questions: strings(&self.questions),
            choice_lens: lens(&self.choice_lens),
            choices: strings(&self.choices),
            answers_idx: Vec::with_capacity(self.answers_idx.len()),
            subjects: strings(&self.subjects),
            solutions: strings(&self.solutions),
            answers: strings(&self.answers),
        }
    }

    /// Builds the batch and resets the builder (sized for a batch like this one).
    pub fn finish(&mut self) -> RecordBatch {
        let next = self.sized_like();
        let mut b = std::mem::replace(self, next);
        let strings = |v: &mut StringBuilder| -> ArrayRef { Arc::new(v.finish()) };
        let columns: Vec<ArrayRef> = match b.kind {
            Kind::Document => vec![
                strings(&mut b.ids),
                strings(&mut b.texts),
                strings(&mut b.sources),
                strings(&mut b.metas),
            ],
            Kind::Conversation => {
                let parts = StructArray::new(
                    part_fields(),
                    vec![strings(&mut b.part_kinds), strings(&mut b.part_texts)],
                    None,
                );
                let parts_list = ListArray::new(
                    Arc::new(Field::new("item", DataType::Struct(part_fields()), false)),
                    OffsetBuffer::from_lengths(b.part_lens.iter().copied()),
                    Arc::new(parts),
                    None,
                );
                let messages = StructArray::new(
                    message_fields(),
                    vec![strings(&mut b.roles), Arc::new(parts_list)],
                    None,
                );
                let messages_list = ListArray::new(
                    Arc::new(Field::new(
                        "item",
                        DataType::Struct(message_fields()),
                        false,
                    )),
                    OffsetBuffer::from_lengths(b.msg_lens.iter().copied()),
                    Arc::new(messages),
                    None,
                );
                vec![
                    strings(&mut b.ids),
                    Arc::new(messages_list),
                    strings(&mut b.sources),
                    strings(&mut b.metas),
                ]
            }
            Kind::MultipleChoice => {
                let choices = ListArray::new(
                    Arc::new(Field::new("item", DataType::Utf8, false)),
                    OffsetBuffer::from_lengths(b.choice_lens.iter().copied()),
                    strings(&mut b.choices),
                    None,
                );
                vec![
                    strings(&mut b.ids),
                    strings(&mut b.questions),
                    Arc::new(choices),
                    Arc::new(UInt32Array::from(std::mem::take(&mut b.answers_idx))),
                    strings(&mut b.subjects),
                    strings(&mut b.sources),
                ]
            }
            Kind::Math => vec![
                strings(&mut b.ids),
                strings(&mut b.questions),
                strings(&mut b.solutions),
                strings(&mut b.answers),
                strings(&mut b.sources),
            ],
        };
        RecordBatch::try_new(schema(b.kind), columns).expect("columns match the canonical schema")
    }
}

/// Builds one batch from records of one kind.
pub fn to_batch(kind: Kind, records: &[Record]) -> RecordBatch {
    let mut b = BatchBuilder::new(kind);
    for r in records {
        b.push(r);
    }
    b.finish()
}

/// Casts a batch with the right column names (in any order, string columns as Utf8, LargeUtf8 or
/// Utf8View, as DataFusion may produce) to the canonical schema of `kind`.
pub fn conform(batch: &RecordBatch, kind: Kind) -> Result<RecordBatch, SchemaError> {
    let want = schema(kind);
    let expected = want
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut columns = Vec::with_capacity(want.fields().len());
    for field in want.fields() {
        let col = batch
            .column_by_name(field.name())
            .ok_or_else(|| SchemaError::MissingColumn {
                column: field.name().clone(),
                kind,
                expected: expected.clone(),
            })?;
        let col = if col.data_type() == field.data_type() {
            col.clone()
        } else {
            cast(col, field.data_type()).map_err(|_| SchemaError::ColumnType {
                column: field.name().clone(),
                found: col.data_type().clone(),
                expected: field.data_type().clone(),
            })?
        };
        if !field.is_nullable() && col.null_count() > 0 {
            let row = (0..col.len()).find(|&i| col.is_null(i)).unwrap_or(0);
            return Err(SchemaError::Null {
                row,
                column: field.name().clone(),
            });
        }
        columns.push(col);
    }
    // Casting does not re-apply the nested non-null flags; rebuild with the canonical schema.
    RecordBatch::try_new(want, columns).map_err(|e| match e {
        arrow::error::ArrowError::InvalidArgumentError(msg) => SchemaError::BadValue {
            row: 0,
            reason: format!("nested value is null: {msg}"),
        },
        other => SchemaError::Arrow(other),
    })
}

fn str_col<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    batch
        .column_by_name(name)
        .expect("conformed batch")
        .as_string::<i32>()
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    if a.is_null(i) { None } else { Some(a.value(i)) }
}

fn parse_meta(a: &StringArray, i: usize) -> Result<Option<serde_json::Value>, SchemaError> {
    opt(a, i)
        .map(|s| {
            serde_json::from_str(s).map_err(|e| SchemaError::BadValue {
                row: i,
                reason: format!("meta is not JSON: {e}"),
            })
        })
        .transpose()
}

/// Reads the records out of a batch (after [`conform`]ing it to `kind`).
pub fn from_batch(batch: &RecordBatch, kind: Kind) -> Result<Vec<Record>, SchemaError> {
    let batch = conform(batch, kind)?;
    let n = batch.num_rows();
    let ids = str_col(&batch, "id");
    let mut out = Vec::with_capacity(n);
    match kind {
        Kind::Document => {
            let (text, source, meta) = (
                str_col(&batch, "text"),
                str_col(&batch, "source"),
                str_col(&batch, "meta"),
            );
            for i in 0..n {
                out.push(Record::Document(Document {
                    id: ids.value(i).to_string(),
                    text: text.value(i).to_string(),
                    source: source.value(i).to_string(),
                    meta: parse_meta(meta, i)?,
                }));
            }
        }
        Kind::Conversation => {
            let messages = batch
                .column_by_name("messages")
                .expect("conformed")
                .as_list::<i32>();
            let (source, meta) = (str_col(&batch, "source"), str_col(&batch, "meta"));
            let msg_struct = messages.values().as_struct();
            let roles = msg_struct.column(0).as_string::<i32>();
            let parts = msg_struct.column(1).as_list::<i32>();
            let part_struct = parts.values().as_struct();
            let (kinds, texts) = (
                part_struct.column(0).as_string::<i32>(),
                part_struct.column(1).as_string::<i32>(),
            );
            let mo = messages.value_offsets();
            let po = parts.value_offsets();
            for i in 0..n {
                let mut msgs = Vec::with_capacity((mo[i + 1] - mo[i]) as usize);
                for m in mo[i] as usize..mo[i + 1] as usize {
                    let role = roles
                        .value(m)
                        .parse()
                        .map_err(|reason| SchemaError::BadValue { row: i, reason })?;
                    let mut ps = Vec::with_capacity((po[m + 1] - po[m]) as usize);
                    for p in po[m] as usize..po[m + 1] as usize {
                        let kind = kinds
                            .value(p)
                            .parse()
                            .map_err(|reason| SchemaError::BadValue { row: i, reason })?;
                        ps.push(Part {
                            kind,
                            text: texts.value(p).to_string(),
                        });
                    }
                    msgs.push(Message { role, parts: ps });
                }
                out.push(Record::Conversation(Conversation {
                    id: ids.value(i).to_string(),
                    messages: msgs,
                    source: source.value(i).to_string(),
                    meta: parse_meta(meta, i)?,
                }));
            }
        }
        Kind::MultipleChoice => {
            let question = str_col(&batch, "question");
            let choices = batch
                .column_by_name("choices")
                .expect("conformed")
                .as_list::<i32>();
            let values = choices.values().as_string::<i32>();
            let answer = batch
                .column_by_name("answer")
                .expect("conformed")
                .as_primitive::<UInt32Type>();
            let (subject, source) = (str_col(&batch, "subject"), str_col(&batch, "source"));
            let co = choices.value_offsets();
            for i in 0..n {
                out.push(Record::MultipleChoice(MultipleChoice {
                    id: ids.value(i).to_string(),
                    question: question.value(i).to_string(),
                    choices: (co[i] as usize..co[i + 1] as usize)
                        .map(|j| values.value(j).to_string())
                        .collect(),
                    answer: answer.value(i),
                    subject: opt(subject, i).map(str::to_string),
                    source: source.value(i).to_string(),
                }));
            }
        }
        Kind::Math => {
            let (q, s, a, src) = (
                str_col(&batch, "question"),
                str_col(&batch, "solution"),
                str_col(&batch, "answer"),
                str_col(&batch, "source"),
            );
            for i in 0..n {
                out.push(Record::Math(MathProblem {
                    id: ids.value(i).to_string(),
                    question: q.value(i).to_string(),
                    solution: s.value(i).to_string(),
                    answer: a.value(i).to_string(),
                    source: src.value(i).to_string(),
                }));
            }
        }
    }
    Ok(out)
}

/// A nullable string column (helper for other crates building small tables).
pub fn string_column<I, S>(values: I) -> ArrayRef
where
    I: IntoIterator<Item = Option<S>>,
    S: AsRef<str>,
{
    Arc::new(values.into_iter().collect::<StringArray>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Role;

    fn samples() -> Vec<Record> {
        vec![
            Record::Conversation(Conversation {
                id: "a".into(),
                messages: vec![
                    Message::new(Role::System, "あなたは親切です。"),
                    Message::new(Role::User, "こんにちは"),
                    Message {
                        role: Role::Assistant,
                        parts: vec![
                            Part::text("計算: "),
                            Part::python("1+1"),
                            Part::python_output("2"),
                        ],
                    },
                ],
                source: "s".into(),
                meta: Some(serde_json::json!({"k": 1})),
            }),
            Record::Conversation(Conversation {
                id: "b".into(),
                messages: vec![
                    Message::new(Role::User, "u"),
                    Message::new(Role::Assistant, "a"),
                ],
                source: String::new(),
                meta: None,
            }),
        ]
    }

    #[test]
    fn conversation_round_trip() {
        let recs = samples();
        let batch = to_batch(Kind::Conversation, &recs);
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(from_batch(&batch, Kind::Conversation).unwrap(), recs);
        assert_eq!(kind_of_schema(&batch.schema()), Some(Kind::Conversation));
    }

    #[test]
    fn mc_and_math_round_trip() {
        let recs = vec![Record::MultipleChoice(MultipleChoice {
            id: "1".into(),
            question: "q".into(),
            choices: vec!["x".into(), "y".into(), "z".into()],
            answer: 2,
            subject: Some("s".into()),
            source: String::new(),
        })];
        let batch = to_batch(Kind::MultipleChoice, &recs);
        assert_eq!(from_batch(&batch, Kind::MultipleChoice).unwrap(), recs);
        let recs = vec![Record::Math(MathProblem {
            id: "1".into(),
            question: "q".into(),
            solution: "<<1+1=2>>".into(),
            answer: "2".into(),
            source: String::new(),
        })];
        let batch = to_batch(Kind::Math, &recs);
        assert_eq!(from_batch(&batch, Kind::Math).unwrap(), recs);
    }

    #[test]
    fn conform_rejects_missing_columns() {
        let recs = samples();
        let batch = to_batch(Kind::Conversation, &recs);
        let err = from_batch(&batch, Kind::Document).unwrap_err();
        assert!(err.to_string().contains("missing column `text`"), "{err}");
    }
}
