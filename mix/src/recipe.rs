//! Mixture recipes (TOML).
//!
//! ```toml
//! name = "tiny_ja"              # the published dataset (also `tiny_ja_val`, `tiny_ja_blend`)
//! description = "…"             # optional
//! seed = 42                     # shuffles, samples and the validation split
//! tokenizer = "byte"            # a tokenizer directory (relative to the recipe) or `byte`
//! max_seq_len = 512             # row limit the audit and the truncation policy use
//! truncation = "drop"           # error | drop | truncate
//! validation = 0.05             # share of each component's rows held out (0 = none)
//! total_rows = 1000             # optional: the total when every component has a `weight`
//! allow_eval_only = false       # refuse evaluation-only inputs unless true
//! allow_unknown_license = false # refuse `unknown` licenses unless true
//!
//! [[component]]
//! name = "chat"
//! sql = "SELECT * FROM sample_conversations"
//! epochs = 2.5                  # or rows = N, tokens = N, weight = 0.3 (exactly one)
//!
//! [decontamination]
//! eval_only = true              # check against every eval-only dataset in the catalog
//! datasets = ["jcqa_valid"]     # and these catalog datasets
//! ngram = 13                    # character n-gram size (after normalization)
//! min_fraction = 0.5            # share of an eval item's n-grams a row must contain
//! ```
//!
//! Quantities: `rows` takes exactly N rows (whole passes over the component, then a seeded sample
//! of the remainder); `epochs` takes `round(e × rows)` rows the same way; `tokens` takes rows in
//! seeded order, pass after pass, until the rendered tokens reach N; `weight` makes the
//! component's **rows** that share of the mixture's total rows (the fixed components' rows divided
//! by one minus the weights; when every component is weighted, `total_rows`, else the largest
//! total that needs no upsampling).

use std::path::{Path, PathBuf};

use njp_tokenizer::TruncationPolicy;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How much of a component goes into the mixture.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    Rows(u64),
    Tokens(u64),
    Epochs(f64),
    Weight(f64),
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quantity::Rows(n) => write!(f, "rows = {n}"),
            Quantity::Tokens(n) => write!(f, "tokens = {n}"),
            Quantity::Epochs(e) => write!(f, "epochs = {e}"),
            Quantity::Weight(w) => write!(f, "weight = {w}"),
        }
    }
}

/// One SQL query over the catalog and how much of it to take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    pub sql: String,
    pub quantity: Quantity,
}

/// Decontamination settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decontamination {
    /// Check against every evaluation-only dataset in the catalog.
    #[serde(default = "yes")]
    pub eval_only: bool,
    /// More catalog datasets (`name` or `name@v`) to check against.
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Character n-gram size after normalization.
    #[serde(default = "default_ngram")]
    pub ngram: usize,
    /// Share of an evaluation item's n-grams a training row must contain to be removed.
    #[serde(default = "default_min_fraction")]
    pub min_fraction: f64,
}

fn yes() -> bool {
    true
}

/// Default n-gram size, chosen by measurement on JCommonsenseQA (see the crate README).
pub const DEFAULT_NGRAM: usize = 13;
/// Default share of an eval item's n-grams that marks a row contaminated.
pub const DEFAULT_MIN_FRACTION: f64 = 0.5;

fn default_ngram() -> usize {
    DEFAULT_NGRAM
}
fn default_min_fraction() -> f64 {
    DEFAULT_MIN_FRACTION
}

impl Default for Decontamination {
    fn default() -> Self {
        Decontamination {
            eval_only: true,
            datasets: Vec::new(),
            ngram: DEFAULT_NGRAM,
            min_fraction: DEFAULT_MIN_FRACTION,
        }
    }
}

/// A parsed, checked recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    /// A tokenizer directory (resolved against the recipe's directory) or `byte`.
    pub tokenizer: Option<String>,
    pub max_seq_len: usize,
    pub truncation: TruncationPolicy,
    pub validation: f64,
    pub total_rows: Option<u64>,
    pub allow_eval_only: bool,
    pub allow_unknown_license: bool,
    pub decontamination: Decontamination,
    pub components: Vec<Component>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeFile {
    name: String,
    description: Option<String>,
    seed: u64,
    tokenizer: Option<String>,
    max_seq_len: usize,
    #[serde(default)]
    truncation: Option<String>,
    #[serde(default)]
    validation: f64,
    total_rows: Option<u64>,
    #[serde(default)]
    allow_eval_only: bool,
    #[serde(default)]
    allow_unknown_license: bool,
    #[serde(default)]
    decontamination: Option<Decontamination>,
    #[serde(default, rename = "component")]
    components: Vec<ComponentFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentFile {
    name: String,
    sql: String,
    rows: Option<u64>,
    tokens: Option<u64>,
    epochs: Option<f64>,
    weight: Option<f64>,
}

impl Recipe {
    /// Reads and checks a recipe file; a relative tokenizer path is made relative to the file.
    pub fn load(path: &Path) -> Result<Recipe> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io_err(path))?;
        let mut r = Recipe::parse(&text, path)?;
        if let Some(t) = &r.tokenizer
            && t != "byte"
            && Path::new(t).is_relative()
        {
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            r.tokenizer = Some(base.join(t).display().to_string());
        }
        Ok(r)
    }

    /// Parses recipe text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Recipe> {
        let bad = |reason: String| Error::Recipe {
            path: path.to_path_buf(),
            reason,
        };
        let f: RecipeFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        njp_catalog::manifest::check_name(&f.name).map_err(|e| bad(format!("name: {e}")))?;
        if f.name.len() > 58 {
            return Err(bad(format!(
                "name `{}` is too long (at most 58 characters, to leave room for `_blend`)",
                f.name
            )));
        }
        let truncation = match &f.truncation {
            None => TruncationPolicy::Error,
            Some(s) => s
                .parse()
                .map_err(|e: String| bad(format!("truncation: {e}")))?,
        };
        if f.max_seq_len < 2 {
            return Err(bad(format!(
                "max_seq_len must be at least 2 (got {})",
                f.max_seq_len
            )));
        }
        if !(0.0..0.5).contains(&f.validation) {
            return Err(bad(format!(
                "validation is the share of rows held out, in [0, 0.5) (got {})",
                f.validation
            )));
        }
        if f.components.is_empty() {
            return Err(bad("no [[component]] sections".into()));
        }
        let mut components = Vec::new();
        for (i, c) in f.components.into_iter().enumerate() {
            let at = |reason: String| bad(format!("component {} (`{}`): {reason}", i + 1, c.name));
            if c.name.is_empty()
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
            {
                return Err(at(
                    "name must be non-empty ASCII letters, digits, `_` or `-`".into(),
                ));
            }
            if components.iter().any(|x: &Component| x.name == c.name) {
                return Err(at("duplicate component name".into()));
            }
            if c.sql.trim().is_empty() {
                return Err(at("empty sql".into()));
            }
            let given = [
                c.rows.is_some(),
                c.tokens.is_some(),
                c.epochs.is_some(),
                c.weight.is_some(),
            ]
            .iter()
            .filter(|&&b| b)
            .count();
            if given != 1 {
                return Err(at(format!(
                    "give exactly one quantity of rows, tokens, epochs or weight (found {given})"
                )));
            }
            let quantity = if let Some(n) = c.rows {
                Quantity::Rows(n)
            } else if let Some(n) = c.tokens {
                Quantity::Tokens(n)
            } else if let Some(e) = c.epochs {
                if !(e.is_finite() && e > 0.0) {
                    return Err(at(format!("epochs must be positive (got {e})")));
                }
                Quantity::Epochs(e)
            } else {
                let w = c.weight.expect("one quantity");
                if !(w.is_finite() && w > 0.0 && w <= 1.0) {
                    return Err(at(format!("weight must be in (0, 1] (got {w})")));
                }
                Quantity::Weight(w)
            };
            components.push(Component {
                name: c.name,
                sql: c.sql,
                quantity,
            });
        }
        let weights: f64 = components
            .iter()
            .filter_map(|c| match c.quantity {
                Quantity::Weight(w) => Some(w),
                _ => None,
            })
            .sum();
        let all_weighted = components
            .iter()
            .all(|c| matches!(c.quantity, Quantity::Weight(_)));
        if all_weighted && (weights - 1.0).abs() > 1e-6 {
            return Err(bad(format!(
                "when every component has a weight, the weights must sum to 1 (they sum to {weights})"
            )));
        }
        if !all_weighted && weights >= 1.0 - 1e-9 && weights > 0.0 {
            return Err(bad(format!(
                "the weights sum to {weights}, leaving no share for the components with rows, tokens or epochs"
            )));
        }
        if f.total_rows.is_some() && !all_weighted {
            return Err(bad(
                "total_rows applies only when every component has a weight".into(),
            ));
        }
        let decontamination = f.decontamination.unwrap_or_default();
        if decontamination.ngram < 3 || decontamination.ngram > 64 {
            return Err(bad(format!(
                "decontamination.ngram must be in 3..=64 (got {})",
                decontamination.ngram
            )));
        }
        if !(decontamination.min_fraction > 0.0 && decontamination.min_fraction <= 1.0) {
            return Err(bad(format!(
                "decontamination.min_fraction must be in (0, 1] (got {})",
                decontamination.min_fraction
            )));
        }
        Ok(Recipe {
            name: f.name,
            description: f.description,
            seed: f.seed,
            tokenizer: f.tokenizer,
            max_seq_len: f.max_seq_len,
            truncation,
            validation: f.validation,
            total_rows: f.total_rows,
            allow_eval_only: f.allow_eval_only,
            allow_unknown_license: f.allow_unknown_license,
            decontamination,
            components,
        })
    }

    /// SHA-256 of the canonical JSON form (comments and layout do not matter; the tokenizer is
    /// hashed separately by its contents).
    pub fn hash(&self) -> String {
        let mut r = self.clone();
        r.tokenizer = None;
        let json = serde_json::to_vec(&r).expect("recipe serializes");
        hex::encode(Sha256::digest(json))
    }

    /// The validation dataset's name.
    pub fn val_name(&self) -> String {
        format!("{}_val", self.name)
    }

    /// The blend index dataset's name.
    pub fn blend_name(&self) -> String {
        format!("{}_blend", self.name)
    }
}

/// Where a recipe's tokenizer comes from, for messages.
pub fn tokenizer_spec(recipe: &Recipe, flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf)
        .or_else(|| recipe.tokenizer.as_ref().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
name = "t"
seed = 1
max_seq_len = 64
truncation = "drop"
[[component]]
name = "a"
sql = "SELECT * FROM x"
rows = 10
[[component]]
name = "b"
sql = "SELECT * FROM y"
weight = 0.25
"#;

    #[test]
    fn shipped_recipes_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
        for name in ["tiny-ja.toml", "mid-ja.toml", "sft-ja.toml"] {
            let r = Recipe::load(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!r.components.is_empty());
            assert_eq!(r.decontamination.ngram, DEFAULT_NGRAM);
        }
    }

    #[test]
    fn parses_and_checks() {
        let r = Recipe::parse(OK, Path::new("r.toml")).unwrap();
        assert_eq!(r.components[1].quantity, Quantity::Weight(0.25));
        assert_eq!(r.truncation, TruncationPolicy::Drop);
        assert_eq!(r.hash().len(), 64);
        let e = |t: &str| {
            Recipe::parse(t, Path::new("r.toml"))
                .unwrap_err()
                .to_string()
        };
        assert!(e(&OK.replace("rows = 10", "rows = 10\nepochs = 1.0")).contains("exactly one"));
        assert!(e(&OK.replace("weight = 0.25", "weight = 1.0")).contains("no share"));
        assert!(e(&OK.replace("\"drop\"", "\"crop\"")).contains("unknown truncation policy"));
        assert!(e(&OK.replace("name = \"b\"", "name = \"a\"")).contains("duplicate"));
        assert!(e(&OK.replace("seed = 1", "seed = 1\ncolour = 2")).contains("colour"));
        assert!(e(&OK.replace("rows = 10", "weight = 0.5")).contains("sum to 1"));
        let other = Recipe::parse(&OK.replace("seed = 1", "seed = 2"), Path::new("r")).unwrap();
        assert_ne!(
            other.hash(),
            Recipe::parse(OK, Path::new("r")).unwrap().hash()
        );
    }
}
