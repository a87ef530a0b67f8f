//! Dataset recipes: one TOML file per upstream source in `datasets/recipes/`.
//!
//! A recipe says where the data is (a hub repository at a revision, with file globs; local
//! files; or a sample bundled in the binary), what it is (kind, SPDX license, commercial use,
//! evaluation-only), how far its field layout was verified, how to adapt rows to canonical
//! records, and how to filter, normalize and deduplicate them. Unknown keys are errors, so a typo
//! never silently disables a filter.
//!
//! ```toml
//! name = "llm-jp-oasst2-33k-ja"        # = the file stem
//! dataset = "oasst2_33k_ja"             # catalog name
//! description = "…"
//! kind = "conversation"                 # document | conversation | mc | math
//! license = "Apache-2.0"                # SPDX
//! commercial_use = true
//! eval_only = false
//! layout = "unverified"                 # verified | unverified
//! layout_note = "why / what was checked"
//! homepage = "https://huggingface.co/datasets/llm-jp/oasst2-33k-ja"
//! notes = "…"
//!
//! [source]
//! type = "hub"                          # hub | local | bundled
//! repo = "llm-jp/oasst2-33k-ja"
//! revision = "main"                     # branch, tag, refs/convert/parquet or a commit
//! files = ["oasst2-33k-ja.jsonl"]       # globs over the files of the revision
//!
//! [adapter]
//! type = "generic"                      # generic | oasst_tree | kuci | openmath | persona_chat
//! map = ["messages=conversation"]
//!
//! [filter]
//! min_japanese = 0.3                    # share of Japanese script among letters
//! [[filter.fields]]                     # conditions on raw upstream fields
//! field = "lang"
//! one_of = ["ja"]
//!
//! [normalize]
//! form = "nfc"                          # nfc | nfkc | none
//!
//! [dedup]
//! against = ["oasst1_21k_ja"]           # earlier datasets win (keep-first)
//! ```

use std::path::Path;

use njp_datasets::Kind;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/recipes.rs"));

/// How far a recipe's field layout was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Checked against real upstream files (a local copy or the exact documented format).
    Verified,
    /// Taken from the dataset card or similar documentation, or inferred; the adapter is tested
    /// on a fixture written to that description, not on the real files.
    Unverified,
}

/// A dataset recipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    pub dataset: String,
    pub description: String,
    pub kind: Kind,
    pub license: String,
    pub commercial_use: Option<bool>,
    #[serde(default)]
    pub eval_only: bool,
    pub layout: Layout,
    #[serde(default)]
    pub layout_note: String,
    #[serde(default)]
    pub homepage: Option<String>,
    #[serde(default)]
    pub notes: String,
    pub source: SourceSpec,
    #[serde(default)]
    pub adapter: AdapterSpec,
    #[serde(default)]
    pub filter: FilterSpec,
    #[serde(default)]
    pub normalize: NormalizeSpec,
    #[serde(default)]
    pub dedup: DedupSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    /// A Hugging Face hub dataset repository.
    Hub,
    /// Files on disk (paths relative to the working directory).
    Local,
    /// A sample compiled into the `njp` binary (`njp samples list`).
    Bundled,
}

/// Where the rows come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    #[serde(rename = "type")]
    pub kind: SourceType,
    /// hub: `owner/name`.
    #[serde(default)]
    pub repo: Option<String>,
    /// hub: branch, tag, `refs/convert/parquet` or a commit sha.
    #[serde(default)]
    pub revision: Option<String>,
    /// hub: globs over the revision's files (`*` within a path segment, `**` across segments).
    #[serde(default)]
    pub files: Vec<String>,
    /// hub, on `refs/convert/parquet`: the conversion's config and split, used to derive
    /// `files` when none are given (`{config}/{split}/*.parquet`).
    #[serde(default)]
    pub config: Option<String>,
    #[serde(default)]
    pub split: Option<String>,
    /// local: paths.
    #[serde(default)]
    pub paths: Vec<String>,
    /// bundled: the sample's file name (`conversations.jsonl`).
    #[serde(default)]
    pub file: Option<String>,
    /// `jsonl`, `json`, `csv`, `tsv` or `parquet`; default from the file name (a `.json` file
    /// holding JSON Lines is detected).
    #[serde(default)]
    pub format: Option<String>,
    /// Text encoding (`shift_jis`, `euc-jp`…); default UTF-8.
    #[serde(default)]
    pub encoding: Option<String>,
    /// CSV/TSV without a header row (columns are named `0`, `1`, …).
    #[serde(default)]
    pub no_header: bool,
}

impl SourceSpec {
    /// The file globs to fetch from the hub.
    pub fn hub_patterns(&self) -> Vec<String> {
        if !self.files.is_empty() {
            return self.files.clone();
        }
        match (&self.config, &self.split) {
            (Some(c), Some(s)) => vec![
                format!("{c}/{s}/*.parquet"),
                format!("{c}/partial-{s}/*.parquet"),
            ],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterKind {
    /// `njp_datasets::adapt` with an optional field mapping: OpenAI `messages`, ShareGPT
    /// `conversations`, Alpaca, JCommonsenseQA/KUCI/`question+choices+answer`, GSM8K, `text`.
    #[default]
    Generic,
    /// OpenAssistant message trees (`message_id`/`parent_id`) → conversations.
    OasstTree,
    /// KUCI: multiple choice whose text is Juman++ morphemes joined by spaces.
    Kuci,
    /// OpenMathInstruct-style solutions with `<llm-code>` blocks → python tool calls.
    OpenMath,
    /// RealPersonaChat dialogues (two human speakers) → user/assistant conversations.
    PersonaChat,
}

impl AdapterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::Generic => "generic",
            AdapterKind::OasstTree => "oasst_tree",
            AdapterKind::Kuci => "kuci",
            AdapterKind::OpenMath => "open_math",
            AdapterKind::PersonaChat => "persona_chat",
        }
    }
}

/// Which root-to-leaf paths of a message tree become conversations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Branches {
    /// At every node follow the best-ranked reply (`rank` 0, else the first): one conversation
    /// per tree.
    #[default]
    Best,
    /// Every root-to-leaf path: one conversation per leaf.
    All,
}

/// How OpenMathInstruct code blocks become tool calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeMode {
    /// Only solutions whose every code block is one calculator expression (nanochat's tool)
    /// that evaluates to the block's recorded output; others are dropped and counted.
    #[default]
    Calculator,
    /// Any code, kept verbatim as python tool calls (conversation kind only).
    Python,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterSpec {
    #[serde(rename = "type", default)]
    pub kind: AdapterKind,
    /// `target=source.path` mappings applied before adapting (see `njp import --map`).
    #[serde(default)]
    pub map: Vec<String>,
    /// generic (mc): the subject is the file's stem (JMMLU keeps one subject per file).
    #[serde(default)]
    pub subject_from_file: bool,
    /// generic/kuci (mc, math): prefixes and suffixes removed from the question when present.
    #[serde(default)]
    pub strip_prefix: Vec<String>,
    #[serde(default)]
    pub strip_suffix: Vec<String>,
    /// oasst_tree: the message text field (default `text`).
    #[serde(default)]
    pub text_field: Option<String>,
    /// oasst_tree: which paths become conversations.
    #[serde(default)]
    pub branches: Option<Branches>,
    /// oasst_tree: fields that, when true (or `1`/`"1"`), drop a message and its replies.
    #[serde(default)]
    pub drop_flags: Vec<String>,
    /// open_math: field names (defaults `question`, `generated_solution`, `expected_answer`).
    #[serde(default)]
    pub question_field: Option<String>,
    #[serde(default)]
    pub solution_field: Option<String>,
    #[serde(default)]
    pub answer_field: Option<String>,
    /// open_math: calculator-only or any python.
    #[serde(default)]
    pub code: Option<CodeMode>,
}

/// What to do with a row that lacks a filtered field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IfMissing {
    /// The row is a reject (the recipe expected the field).
    #[default]
    Reject,
    /// The row is dropped and counted.
    Drop,
    /// The row passes (filter only where the data carries the field).
    Keep,
}

/// A condition on a raw upstream field (before adapting).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldFilter {
    /// Dotted path into the row.
    pub field: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub equals: Option<serde_json::Value>,
    #[serde(default)]
    pub one_of: Vec<serde_json::Value>,
    #[serde(default)]
    pub not_one_of: Vec<serde_json::Value>,
    #[serde(default)]
    pub if_missing: IfMissing,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    #[serde(default)]
    pub fields: Vec<FieldFilter>,
    /// Least share of Japanese script (kana, kanji) among the letters of a record.
    #[serde(default)]
    pub min_japanese: Option<f64>,
    /// Bounds on the characters of a record's text.
    #[serde(default)]
    pub min_chars: Option<usize>,
    #[serde(default)]
    pub max_chars: Option<usize>,
}

/// Unicode normalization form applied to every text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    #[default]
    Nfc,
    Nfkc,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeSpec {
    #[serde(default)]
    pub form: Form,
    /// CRLF, CR, NEL, U+2028/2029 → LF.
    #[serde(default = "yes")]
    pub newlines: bool,
    /// Trailing spaces on lines removed, 3+ newlines → 2, text trimmed (code keeps indentation).
    #[serde(default = "yes")]
    pub whitespace: bool,
    /// C0/C1 control characters (except tab and newline), BOM and non-characters removed.
    #[serde(default = "yes")]
    pub control: bool,
}

fn yes() -> bool {
    true
}

impl Default for NormalizeSpec {
    fn default() -> Self {
        NormalizeSpec {
            form: Form::Nfc,
            newlines: true,
            whitespace: true,
            control: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSpec {
    /// Drop rows whose normalized text equals an earlier row's.
    #[serde(default = "yes")]
    pub exact: bool,
    /// Drop rows whose character n-gram MinHash says they are near-duplicates of an earlier row.
    #[serde(default = "yes")]
    pub near: bool,
    #[serde(default = "default_ngram")]
    pub ngram: usize,
    /// Estimated Jaccard similarity at or above which two rows are near-duplicates.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    #[serde(default = "default_permutations")]
    pub permutations: usize,
    #[serde(default = "default_bands")]
    pub bands: usize,
    /// Catalog datasets whose rows come first (their duplicates here are dropped).
    #[serde(default)]
    pub against: Vec<String>,
}

fn default_ngram() -> usize {
    5
}
fn default_threshold() -> f64 {
    0.8
}
fn default_permutations() -> usize {
    128
}
fn default_bands() -> usize {
    16
}

impl Default for DedupSpec {
    fn default() -> Self {
        DedupSpec {
            exact: true,
            near: true,
            ngram: default_ngram(),
            threshold: default_threshold(),
            permutations: default_permutations(),
            bands: default_bands(),
            against: Vec::new(),
        }
    }
}

impl Recipe {
    /// Parses and checks a recipe. `origin` names it in errors (file path or bundled name).
    pub fn parse(text: &str, origin: &str) -> Result<Recipe> {
        let recipe: Recipe = toml::from_str(text).map_err(|e| Error::Recipe {
            recipe: origin.to_string(),
            reason: e.to_string(),
        })?;
        recipe.check().map_err(|reason| Error::Recipe {
            recipe: origin.to_string(),
            reason,
        })?;
        Ok(recipe)
    }

    /// Checks everything a parse cannot: required keys per source type, adapter options that
    /// apply, ranges.
    pub fn check(&self) -> std::result::Result<(), String> {
        njp_catalog::manifest::check_name(&self.dataset)?;
        njp_catalog::manifest::check_license(&self.license)?;
        if self.name.is_empty() {
            return Err("empty `name`".into());
        }
        let s = &self.source;
        let stray = |key: &str, set: bool| -> std::result::Result<(), String> {
            if set {
                Err(format!(
                    "`source.{key}` does not apply to a {:?} source",
                    s.kind
                ))
            } else {
                Ok(())
            }
        };
        match s.kind {
            SourceType::Hub => {
                let repo = s.repo.as_deref().ok_or("hub source needs `source.repo`")?;
                if repo.split('/').count() != 2 || repo.starts_with('/') || repo.ends_with('/') {
                    return Err(format!("`source.repo` `{repo}` is not `owner/name`"));
                }
                if s.revision.as_deref().is_none_or(str::is_empty) {
                    return Err("hub source needs `source.revision` (a branch, tag, refs/convert/parquet or commit)".into());
                }
                if s.hub_patterns().is_empty() {
                    return Err("hub source needs `source.files` (globs) or `source.config` + `source.split`".into());
                }
                stray("paths", !s.paths.is_empty())?;
                stray("file", s.file.is_some())?;
            }
            SourceType::Local => {
                if s.paths.is_empty() {
                    return Err("local source needs `source.paths`".into());
                }
                stray("repo", s.repo.is_some())?;
                stray("revision", s.revision.is_some())?;
                stray("files", !s.files.is_empty())?;
                stray("file", s.file.is_some())?;
            }
            SourceType::Bundled => {
                if s.file.is_none() {
                    return Err("bundled source needs `source.file`".into());
                }
                stray("repo", s.repo.is_some())?;
                stray("revision", s.revision.is_some())?;
                stray("files", !s.files.is_empty())?;
                stray("paths", !s.paths.is_empty())?;
            }
        }
        if let Some(f) = &s.format {
            f.parse::<njp_datasets::read::Format>()?;
        }
        if let Some(e) = &s.encoding {
            njp_datasets::read::encoding_for_label(e).map_err(|e| e.to_string())?;
        }
        njp_datasets::adapt::Mapping::parse(&self.adapter.map)?;
        self.check_adapter()?;
        for f in &self.filter.fields {
            if f.min.is_none()
                && f.max.is_none()
                && f.equals.is_none()
                && f.one_of.is_empty()
                && f.not_one_of.is_empty()
            {
                return Err(format!(
                    "filter on `{}` has no condition (min, max, equals, one_of, not_one_of)",
                    f.field
                ));
            }
        }
        if let Some(j) = self.filter.min_japanese
            && !(0.0..=1.0).contains(&j)
        {
            return Err(format!("`filter.min_japanese` {j} is not between 0 and 1"));
        }
        let d = &self.dedup;
        if d.near {
            if d.ngram == 0 || d.ngram > 64 {
                return Err(format!("`dedup.ngram` {} is not in 1..=64", d.ngram));
            }
            if !(0.0..=1.0).contains(&d.threshold) || d.threshold == 0.0 {
                return Err(format!(
                    "`dedup.threshold` {} is not in (0, 1]",
                    d.threshold
                ));
            }
            if d.bands == 0 || d.permutations == 0 || !d.permutations.is_multiple_of(d.bands) {
                return Err(format!(
                    "`dedup.permutations` ({}) must be a positive multiple of `dedup.bands` ({})",
                    d.permutations, d.bands
                ));
            }
        }
        for a in &d.against {
            njp_catalog::store::DatasetRef::parse(a).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn check_adapter(&self) -> std::result::Result<(), String> {
        let a = &self.adapter;
        let kind = a.kind;
        let only =
            |key: &str, set: bool, allowed: &[AdapterKind]| -> std::result::Result<(), String> {
                if set && !allowed.contains(&kind) {
                    Err(format!(
                        "`adapter.{key}` does not apply to the `{}` adapter",
                        kind.as_str()
                    ))
                } else {
                    Ok(())
                }
            };
        use AdapterKind::*;
        only("subject_from_file", a.subject_from_file, &[Generic])?;
        only("strip_prefix", !a.strip_prefix.is_empty(), &[Generic, Kuci])?;
        only("strip_suffix", !a.strip_suffix.is_empty(), &[Generic, Kuci])?;
        only("text_field", a.text_field.is_some(), &[OasstTree])?;
        only("branches", a.branches.is_some(), &[OasstTree])?;
        only("drop_flags", !a.drop_flags.is_empty(), &[OasstTree])?;
        only("question_field", a.question_field.is_some(), &[OpenMath])?;
        only("solution_field", a.solution_field.is_some(), &[OpenMath])?;
        only("answer_field", a.answer_field.is_some(), &[OpenMath])?;
        only("code", a.code.is_some(), &[OpenMath])?;
        let need = |k: Kind| -> std::result::Result<(), String> {
            if self.kind == k {
                Ok(())
            } else {
                Err(format!(
                    "the `{}` adapter makes {k} records, but the recipe's kind is {}",
                    kind.as_str(),
                    self.kind
                ))
            }
        };
        match kind {
            Generic => {}
            OasstTree | PersonaChat => need(Kind::Conversation)?,
            Kuci => need(Kind::MultipleChoice)?,
            OpenMath => match (self.kind, a.code.unwrap_or_default()) {
                (Kind::Math, CodeMode::Calculator) | (Kind::Conversation, _) => {}
                (Kind::Math, CodeMode::Python) => {
                    return Err("math records hold calculator annotations only; use `code = \"calculator\"` or kind = \"conversation\"".into());
                }
                (other, _) => {
                    return Err(format!(
                        "the `open_math` adapter makes math or conversation records, not {other}"
                    ));
                }
            },
        }
        Ok(())
    }

    /// A bundled recipe by name.
    pub fn bundled(name: &str) -> Result<Recipe> {
        match BUNDLED.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => {
                let r = Recipe::parse(text, n)?;
                if r.name != *n {
                    return Err(Error::Recipe {
                        recipe: n.to_string(),
                        reason: format!("`name` is `{}`, expected the file stem `{n}`", r.name),
                    });
                }
                Ok(r)
            }
            None => Err(Error::UnknownRecipe {
                name: name.to_string(),
                known: BUNDLED.iter().map(|(n, _)| n.to_string()).collect(),
            }),
        }
    }

    /// The TOML text of a bundled recipe.
    pub fn bundled_text(name: &str) -> Option<&'static str> {
        BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    /// Every bundled recipe, sorted by name.
    pub fn all_bundled() -> Result<Vec<Recipe>> {
        BUNDLED.iter().map(|(n, _)| Recipe::bundled(n)).collect()
    }

    /// A bundled recipe's name, or a path to a recipe file (anything ending in `.toml`).
    pub fn load(name_or_path: &str) -> Result<(Recipe, String)> {
        if name_or_path.ends_with(".toml") {
            let path = Path::new(name_or_path);
            let text = std::fs::read_to_string(path).map_err(crate::error::io_err(path))?;
            Ok((Recipe::parse(&text, name_or_path)?, text))
        } else {
            let text = Recipe::bundled_text(name_or_path).unwrap_or_default();
            Ok((Recipe::bundled(name_or_path)?, text.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
name = "t"
dataset = "t_ds"
description = "d"
kind = "mc"
license = "CC-BY-SA-4.0"
commercial_use = true
layout = "verified"
[source]
type = "hub"
repo = "o/n"
revision = "main"
files = ["*.jsonl"]
"#;

    #[test]
    fn minimal_recipe_parses_with_defaults() {
        let r = Recipe::parse(MIN, "t").unwrap();
        assert_eq!(r.kind, Kind::MultipleChoice);
        assert!(r.dedup.exact && r.dedup.near);
        assert_eq!(r.normalize.form, Form::Nfc);
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let typo = MIN.replace("[source]", "colour = 1\n[source]");
        let e = Recipe::parse(&typo, "t").unwrap_err().to_string();
        assert!(e.contains("unknown field `colour`"), "{e}");
        let bad = MIN.replace("CC-BY-SA-4.0", "CC BY-SA 4.0");
        assert!(Recipe::parse(&bad, "t").is_err());
        let norepo = MIN.replace("repo = \"o/n\"\n", "");
        let e = Recipe::parse(&norepo, "t").unwrap_err().to_string();
        assert!(e.contains("source.repo"), "{e}");
        let wrong_adapter = format!("{MIN}\n[adapter]\ntype = \"oasst_tree\"\n");
        let e = Recipe::parse(&wrong_adapter, "t").unwrap_err().to_string();
        assert!(e.contains("makes conversation records"), "{e}");
        let stray = format!("{MIN}\n[adapter]\ntext_field = \"x\"\n");
        let e = Recipe::parse(&stray, "t").unwrap_err().to_string();
        assert!(e.contains("does not apply"), "{e}");
        let bands = format!("{MIN}\n[dedup]\nbands = 7\n");
        assert!(Recipe::parse(&bands, "t").is_err());
    }

    #[test]
    fn every_bundled_recipe_parses() {
        let all = Recipe::all_bundled().unwrap();
        assert!(all.len() >= 20, "{} recipes", all.len());
        let mut datasets: Vec<&str> = all.iter().map(|r| r.dataset.as_str()).collect();
        datasets.sort_unstable();
        let n = datasets.len();
        datasets.dedup();
        assert_eq!(n, datasets.len(), "dataset names must be unique");
    }
}
