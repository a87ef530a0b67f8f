//! The manifest of one dataset version: what it is, where it came from, what it was made of.

use std::fmt;
use std::str::FromStr;

use njp_datasets::Kind;
use serde::{Deserialize, Serialize};

/// What a dataset's rows are: one of the canonical record kinds, or a plain table (a SQL result
/// that is not a canonical kind, a mixture's blend index, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DatasetKind {
    Records(Kind),
    Table,
}

impl DatasetKind {
    pub fn record_kind(self) -> Option<Kind> {
        match self {
            DatasetKind::Records(k) => Some(k),
            DatasetKind::Table => None,
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetKind::Records(k) => k.fmt(f),
            DatasetKind::Table => f.write_str("table"),
        }
    }
}

impl FromStr for DatasetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "table" {
            Ok(DatasetKind::Table)
        } else {
            s.parse().map(DatasetKind::Records)
        }
    }
}

impl TryFrom<String> for DatasetKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<DatasetKind> for String {
    fn from(k: DatasetKind) -> String {
        k.to_string()
    }
}

impl From<Kind> for DatasetKind {
    fn from(k: Kind) -> Self {
        DatasetKind::Records(k)
    }
}

/// A file the dataset was built from, with its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Path as given by the user (local) or path inside the repository (hub).
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// Where the rows came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// Local files.
    Local { files: Vec<SourceFile> },
    /// A Hugging Face hub dataset repository.
    Hub {
        repo: String,
        /// The revision asked for (branch, tag or commit).
        revision: String,
        /// The commit it resolved to.
        resolved: String,
        files: Vec<SourceFile>,
    },
    /// Computed from other catalog datasets (see `parents` and `parameters`).
    Derived { how: String },
}

impl Source {
    pub fn type_name(&self) -> &'static str {
        match self {
            Source::Local { .. } => "local",
            Source::Hub { .. } => "hub",
            Source::Derived { .. } => "derived",
        }
    }
}

/// A dataset version this one was made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Parent {
    pub name: String,
    pub version: u32,
}

impl fmt::Display for Parent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// A data file of the dataset, relative to the version directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// The manifest of one published dataset version (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: u32,
    pub kind: DatasetKind,
    /// SPDX license expression, or `unknown` (refused by mixtures unless explicitly allowed).
    pub license: String,
    /// Evaluation data: mixtures refuse it, decontamination checks against it.
    #[serde(default)]
    pub eval_only: bool,
    /// Whether the license and terms allow commercial use, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commercial_use: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub source: Source,
    pub rows: u64,
    pub bytes: u64,
    pub files: Vec<DataFile>,
    /// Rows refused during the build (stored in `rejects.parquet`).
    #[serde(default)]
    pub rejects: u64,
    /// RFC 3339, UTC.
    pub created: String,
    /// `njp <version>` that wrote it.
    pub tool_version: String,
    #[serde(default)]
    pub parents: Vec<Parent>,
    /// How it was built: command-line parameters, SQL text, recipe…
    #[serde(default)]
    pub parameters: serde_json::Value,
    /// Statistics (row counts per reason, token-length audits…), keyed by producer.
    #[serde(default)]
    pub stats: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    pub fn as_parent(&self) -> Parent {
        Parent {
            name: self.name.clone(),
            version: self.version,
        }
    }
}

/// What a publisher supplies; the catalog fills in name, version, rows, bytes, files, times.
#[derive(Debug, Clone)]
pub struct Draft {
    pub kind: DatasetKind,
    pub license: String,
    pub eval_only: bool,
    pub commercial_use: Option<bool>,
    pub description: Option<String>,
    pub source: Source,
    pub parents: Vec<Parent>,
    pub parameters: serde_json::Value,
    pub stats: serde_json::Map<String, serde_json::Value>,
    pub rejects: u64,
}

impl Draft {
    pub fn new(kind: impl Into<DatasetKind>, license: impl Into<String>, source: Source) -> Self {
        Draft {
            kind: kind.into(),
            license: license.into(),
            eval_only: false,
            commercial_use: None,
            description: None,
            source,
            parents: Vec::new(),
            parameters: serde_json::Value::Null,
            stats: serde_json::Map::new(),
            rejects: 0,
        }
    }
}

/// Checks a license string: an SPDX-like expression (`CC-BY-SA-4.0`, `Apache-2.0 OR MIT`,
/// `LicenseRef-…`) or `unknown`.
pub fn check_license(license: &str) -> Result<(), String> {
    if license == "unknown" {
        return Ok(());
    }
    if license.trim().is_empty() {
        return Err("empty license (use an SPDX id such as CC-BY-SA-4.0, or `unknown`)".into());
    }
    let err = || {
        format!(
            "`{license}` is not an SPDX license expression (e.g. CC-BY-SA-4.0, Apache-2.0, `MIT OR Apache-2.0`, or `unknown`)"
        )
    };
    // Identifiers and operators must alternate: `A`, `A OR B`, `(A AND B) WITH C`.
    let mut expect_id = true;
    for token in license.split_whitespace() {
        let token = token.trim_matches(|c| c == '(' || c == ')');
        if token.is_empty() {
            continue;
        }
        let is_op = matches!(token, "AND" | "OR" | "WITH");
        if is_op == expect_id {
            return Err(err());
        }
        if !is_op
            && !token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '+'))
        {
            return Err(err());
        }
        expect_id = is_op;
    }
    if expect_id {
        return Err(err());
    }
    Ok(())
}

/// Checks a dataset name: lowercase ASCII letters, digits and `_`, starting with a letter, so
/// that it is a plain SQL identifier.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "`{name}` is not a valid dataset name: use lowercase letters, digits and `_`, starting with a letter (it becomes a SQL table name)"
        ));
    }
    if name.len() > 64 {
        return Err(format!("`{name}` is longer than 64 characters"));
    }
    if matches!(name, "catalog" | "rejects" | "information_schema") {
        return Err(format!("`{name}` is reserved"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licenses() {
        assert!(check_license("CC-BY-SA-4.0").is_ok());
        assert!(check_license("Apache-2.0 OR MIT").is_ok());
        assert!(check_license("unknown").is_ok());
        assert!(check_license("").is_err());
        assert!(check_license("CC BY-SA 4.0").is_err());
        assert!(check_license("MIT OR").is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("sample_mc").is_ok());
        assert!(check_name("Sample").is_err());
        assert!(check_name("1abc").is_err());
        assert!(check_name("a-b").is_err());
        assert!(check_name("catalog").is_err());
    }

    #[test]
    fn kind_serde() {
        let k: DatasetKind = serde_json::from_str("\"mc\"").unwrap();
        assert_eq!(k, DatasetKind::Records(Kind::MultipleChoice));
        assert_eq!(
            serde_json::to_string(&DatasetKind::Table).unwrap(),
            "\"table\""
        );
    }
}
