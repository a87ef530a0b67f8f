//! Planning a mixture: run each component's query, check licenses and evaluation flags, remove
//! contaminated rows, measure tokens, hold out validation rows, apply the quantities and shuffle.
//!
//! Everything random comes from [`SplitMix64`] streams derived from the recipe's seed and fixed
//! labels, and every step runs in component order, so the same recipe over the same dataset
//! versions and tokenizer gives the same plan on any machine and thread count.

use std::collections::{BTreeSet, HashSet};

use njp_catalog::{Catalog, Manifest, Parent};
use njp_datasets::schema::{from_batch, kind_of_schema};
use njp_datasets::{Kind, Record};
use njp_tokenizer::{Tokenizer, TruncationPolicy};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::{Audit, RowTokens, measure_all};
use crate::decontam::{EvalItem, Index, eval_text};
use crate::error::{Error, Result};
use crate::recipe::{Quantity, Recipe};
use crate::rng::SplitMix64;

/// A row taken out of a component before selection, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Removed {
    pub component: String,
    pub row_id: String,
    /// `contaminated`, `too_long` or `unsupervised`.
    pub reason: String,
    pub detail: String,
    pub eval_dataset: Option<String>,
    pub eval_id: Option<String>,
}

/// One component's rows after its query.
#[derive(Debug)]
pub struct ComponentData {
    pub name: String,
    pub kind: Kind,
    pub inputs: Vec<Manifest>,
    pub records: Vec<Record>,
    /// Tokens of each record (same order; zeroed for removed rows).
    pub tokens: Vec<RowTokens>,
    /// Whether each record is usable (not removed).
    pub usable: Vec<bool>,
}

impl ComponentData {
    /// `name@v` of the datasets the query read, joined with `+`.
    pub fn dataset(&self) -> String {
        self.inputs
            .iter()
            .map(Manifest::id)
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// One row of the blend: which component, which of its records, which pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pick {
    pub component: u32,
    pub row: u32,
    pub epoch: u32,
}

/// The plan of one component, for `njp mix show`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentPlan {
    pub name: String,
    pub kind: Kind,
    pub quantity: Quantity,
    pub inputs: Vec<String>,
    pub licenses: Vec<String>,
    /// Rows the query returned.
    pub query_rows: u64,
    pub removed_contaminated: u64,
    pub removed_policy: u64,
    pub validation_rows: u64,
    /// Rows left to sample from.
    pub pool_rows: u64,
    /// Rows in the blend (with repeats).
    pub rows: u64,
    pub unique_rows: u64,
    /// Tokens in the blend (as trained: truncated rows count what is kept).
    pub tokens: u64,
    pub epochs: f64,
    pub share_rows: f64,
    pub share_tokens: f64,
}

/// Summary of decontamination.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DecontamReport {
    pub eval_datasets: Vec<String>,
    pub eval_items: u64,
    pub items_too_short: u64,
    pub ngram: usize,
    pub min_fraction: f64,
    pub removed: u64,
}

/// A planned mixture.
#[derive(Debug)]
pub struct Plan {
    pub recipe: Recipe,
    pub recipe_hash: String,
    pub tokenizer: String,
    pub tokenizer_hash: String,
    pub kind: Kind,
    pub data: Vec<ComponentData>,
    pub components: Vec<ComponentPlan>,
    /// Training rows in blend order.
    pub train: Vec<Pick>,
    /// Validation rows in order.
    pub val: Vec<Pick>,
    pub removed: Vec<Removed>,
    pub decontamination: DecontamReport,
    pub licenses: BTreeSet<String>,
    pub inputs: Vec<Parent>,
}

/// The byte-level stand-in tokenizer (256 byte tokens then nanochat's specials), matching the
/// trainer's `byte` tokenizer ids.
pub fn byte_tokenizer() -> Tokenizer {
    Tokenizer::from_tokens(
        (0..=255u8).map(|b| vec![b]).collect(),
        njp_tokenizer::SplitPattern::default(),
        &njp_tokenizer::NANOCHAT_SPECIALS,
    )
    .expect("byte tokenizer builds")
}

/// Loads a tokenizer directory, or `byte`; returns it with a content hash.
pub fn load_tokenizer(spec: &str) -> Result<(Tokenizer, String)> {
    let tok = if spec == "byte" {
        byte_tokenizer()
    } else {
        Tokenizer::load(spec)?
    };
    let mut h = Sha256::new();
    h.update(tok.pattern().regex().as_bytes());
    h.update(njp_tokenizer::io::tiktoken_ranks(&tok));
    for s in tok.special_tokens() {
        h.update(s.as_bytes());
        h.update([0]);
    }
    Ok((tok, hex::encode(h.finalize())))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Sql(format!("starting the query runtime: {e}")))
}

/// Runs a component's query and reads its rows as records.
pub fn query_component(
    catalog: &Catalog,
    rt: &tokio::runtime::Runtime,
    name: &str,
    sql: &str,
) -> Result<(Kind, Vec<Manifest>, Vec<Record>)> {
    let comp = |reason: String| Error::Component {
        component: name.to_string(),
        reason,
    };
    let (inputs, batches, schema) = rt.block_on(async {
        let q = catalog
            .query(sql)
            .await
            .map_err(|e| comp(format!("query failed: {e}")))?;
        let schema = q.frame.schema().as_arrow().clone();
        let batches = q
            .frame
            .collect()
            .await
            .map_err(|e| comp(format!("query failed: {}", e.strip_backtrace())))?;
        Ok::<_, Error>((q.inputs, batches, schema))
    })?;
    let kind = kind_of_schema(&schema).ok_or_else(|| {
        comp(format!(
            "the query's columns ({}) are not those of a record kind (document: id, text, source, meta; conversation: id, messages, source, meta; mc: id, question, choices, answer, subject, source; math: id, question, solution, answer, source)",
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let mut records = Vec::new();
    for b in &batches {
        let offset = records.len();
        let rs = from_batch(b, kind).map_err(|e| comp(format!("after row {offset}: {e}")))?;
        records.extend(rs);
    }
    let mut seen = HashSet::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        if let Err(e) = r.validate() {
            return Err(Error::Row {
                component: name.to_string(),
                row: i,
                id: r.id().to_string(),
                reason: e.to_string(),
            });
        }
        if !seen.insert(r.id().to_string()) {
            return Err(Error::Row {
                component: name.to_string(),
                row: i,
                id: r.id().to_string(),
                reason: "duplicate id in the query result (row identity is the id; select distinct rows or make ids unique)".into(),
            });
        }
    }
    if records.is_empty() {
        return Err(comp("the query returned no rows".into()));
    }
    Ok((kind, inputs, records))
}

/// Evaluation items: every eval-only dataset (when asked) and the named datasets.
pub fn eval_items(catalog: &Catalog, recipe: &Recipe) -> Result<(Vec<String>, Vec<EvalItem>)> {
    let mut sets: Vec<Manifest> = Vec::new();
    if recipe.decontamination.eval_only {
        sets.extend(catalog.list()?.into_iter().filter(|m| m.eval_only));
    }
    for name in &recipe.decontamination.datasets {
        let m = catalog.resolve(name)?;
        if !sets.iter().any(|x| x.id() == m.id()) {
            sets.push(m);
        }
    }
    let mut items = Vec::new();
    let mut names = Vec::new();
    for m in &sets {
        if m.kind.record_kind().is_none() {
            return Err(Error::Dataset(format!(
                "decontamination set `{}` is a table, not records",
                m.id()
            )));
        }
        names.push(m.id());
        for r in catalog.records(m)? {
            let r = r?;
            items.push(EvalItem {
                dataset: m.id(),
                id: r.id().to_string(),
                text: eval_text(&r),
            });
        }
    }
    Ok((names, items))
}

/// Draws `count` rows from `pool` (indices into the component's records): whole seeded passes,
/// then the first rows of one more seeded pass.
fn select_rows(seed: u64, name: &str, pool: &[u32], count: u64) -> Vec<Pick> {
    let a = pool.len() as u64;
    let mut out = Vec::with_capacity(count as usize);
    let mut epoch = 0u32;
    let mut left = count;
    while left > 0 {
        let perm = SplitMix64::derive(seed, name, u64::from(epoch)).permutation(pool.len());
        let take = left.min(a);
        for &p in &perm[..take as usize] {
            out.push(Pick {
                component: 0,
                row: pool[p as usize],
                epoch,
            });
        }
        left -= take;
        epoch += 1;
    }
    out
}

/// Draws rows in seeded passes until their tokens reach `target`.
fn select_tokens(seed: u64, name: &str, pool: &[u32], tokens: &[u64], target: u64) -> Vec<Pick> {
    let mut out = Vec::new();
    let mut sum = 0u64;
    let mut epoch = 0u32;
    while sum < target {
        let perm = SplitMix64::derive(seed, name, u64::from(epoch)).permutation(pool.len());
        for &p in &perm {
            if sum >= target {
                break;
            }
            let row = pool[p as usize];
            sum += tokens[row as usize];
            out.push(Pick {
                component: 0,
                row,
                epoch,
            });
        }
        epoch += 1;
    }
    out
}

impl Plan {
    /// Plans `recipe` over the catalog with `tok` (`tokenizer` names it in the lineage).
    pub fn make(
        catalog: &Catalog,
        recipe: &Recipe,
        tok: &Tokenizer,
        tokenizer: &str,
        tokenizer_hash: &str,
    ) -> Result<Plan> {
        Plan::make_with(catalog, recipe, tok, tokenizer, tokenizer_hash, true)
    }

    /// Like [`Plan::make`]; with `enforce = false` the truncation policy neither removes rows nor
    /// fails (for auditing what the policy would cost).
    pub fn make_with(
        catalog: &Catalog,
        recipe: &Recipe,
        tok: &Tokenizer,
        tokenizer: &str,
        tokenizer_hash: &str,
        enforce: bool,
    ) -> Result<Plan> {
        let rt = runtime()?;
        let max = recipe.max_seq_len;
        let mut data = Vec::new();
        let mut licenses = BTreeSet::new();
        for c in &recipe.components {
            let (kind, inputs, records) = query_component(catalog, &rt, &c.name, &c.sql)?;
            for m in &inputs {
                if m.eval_only && !recipe.allow_eval_only {
                    return Err(Error::EvalOnly {
                        component: c.name.clone(),
                        dataset: m.id(),
                    });
                }
                if m.license == "unknown" && !recipe.allow_unknown_license {
                    return Err(Error::UnknownLicense {
                        component: c.name.clone(),
                        dataset: m.id(),
                    });
                }
                licenses.insert(m.license.clone());
            }
            tracing::info!(component = %c.name, rows = records.len(), %kind, "queried");
            let n = records.len();
            data.push(ComponentData {
                name: c.name.clone(),
                kind,
                inputs,
                records,
                tokens: vec![RowTokens::default(); n],
                usable: vec![true; n],
            });
        }
        let docs = data.iter().filter(|d| d.kind == Kind::Document).count();
        let kind = if docs == data.len() {
            Kind::Document
        } else if docs == 0 {
            Kind::Conversation
        } else {
            let names: Vec<&str> = data
                .iter()
                .filter(|d| d.kind == Kind::Document)
                .map(|d| d.name.as_str())
                .collect();
            return Err(Error::Dataset(format!(
                "recipe `{}` mixes documents (components {}) with chat data; a mixture is either documents (base training) or conversations, mc and math (mid/SFT)",
                recipe.name,
                names.join(", ")
            )));
        };

        // Decontamination.
        let (eval_sets, items) = eval_items(catalog, recipe)?;
        let index = Index::build(
            items,
            recipe.decontamination.ngram,
            recipe.decontamination.min_fraction,
        );
        let mut removed = Vec::new();
        let mut decon = DecontamReport {
            eval_datasets: eval_sets,
            eval_items: index.items().len() as u64,
            items_too_short: index.skipped() as u64,
            ngram: recipe.decontamination.ngram,
            min_fraction: recipe.decontamination.min_fraction,
            removed: 0,
        };
        let mut contaminated = vec![0u64; data.len()];
        if !index.is_empty() {
            for (ci, d) in data.iter_mut().enumerate() {
                let hits: Vec<_> = d
                    .records
                    .par_iter()
                    .with_min_len(64)
                    .map(|r| index.check(&r.text()))
                    .collect();
                for (i, h) in hits.into_iter().enumerate() {
                    if let Some(h) = h {
                        let item = &index.items()[h.item];
                        d.usable[i] = false;
                        contaminated[ci] += 1;
                        removed.push(Removed {
                            component: d.name.clone(),
                            row_id: d.records[i].id().to_string(),
                            reason: "contaminated".into(),
                            detail: format!(
                                "{}/{} {}-grams of {} `{}`: {}",
                                h.matched,
                                h.of,
                                index.n(),
                                item.dataset,
                                item.id,
                                truncate_chars(&item.text, 80)
                            ),
                            eval_dataset: Some(item.dataset.clone()),
                            eval_id: Some(item.id.clone()),
                        });
                    }
                }
            }
        }
        decon.removed = removed.len() as u64;
        if decon.removed > 0 {
            tracing::info!(removed = decon.removed, "contaminated rows removed");
        }

        // Tokens and the truncation policy.
        let mut policy_removed = vec![0u64; data.len()];
        for (ci, d) in data.iter_mut().enumerate() {
            let tokens = measure_all(tok, &d.records, max).map_err(|(i, reason)| Error::Row {
                component: d.name.clone(),
                row: i,
                id: d.records[i].id().to_string(),
                reason,
            })?;
            d.tokens = tokens;
            if kind == Kind::Document || !enforce {
                continue;
            }
            let candidates: Vec<usize> = (0..d.records.len()).filter(|&i| d.usable[i]).collect();
            for i in candidates {
                let t = d.tokens[i];
                let reason = if t.supervised == 0 {
                    Some((
                        "unsupervised",
                        "no assistant turn, so no supervised tokens".to_string(),
                    ))
                } else {
                    match recipe.truncation {
                        TruncationPolicy::Drop if t.tokens as usize > max => Some((
                            "too_long",
                            format!("{} tokens > max_seq_len {max} (policy drop)", t.tokens),
                        )),
                        TruncationPolicy::Truncate if t.truncated_tokens == 0 => Some((
                            "too_long",
                            format!(
                                "{} tokens and not even the first assistant turn fits in {max} (policy truncate)",
                                t.tokens
                            ),
                        )),
                        _ => None,
                    }
                };
                if let Some((reason, detail)) = reason {
                    if recipe.truncation == TruncationPolicy::Error {
                        // Reported by the error-policy check after selection.
                        continue;
                    }
                    d.usable[i] = false;
                    policy_removed[ci] += 1;
                    removed.push(Removed {
                        component: d.name.clone(),
                        row_id: d.records[i].id().to_string(),
                        reason: reason.into(),
                        detail,
                        eval_dataset: None,
                        eval_id: None,
                    });
                }
            }
        }
        let effective = |d: &ComponentData, row: usize| -> u64 {
            let t = d.tokens[row];
            if kind != Kind::Document && recipe.truncation == TruncationPolicy::Truncate {
                u64::from(t.truncated_tokens)
            } else {
                u64::from(t.tokens)
            }
        };

        // Validation split and pools.
        let mut pools: Vec<Vec<u32>> = Vec::new();
        let mut val = Vec::new();
        let mut val_rows = Vec::new();
        for (ci, d) in data.iter().enumerate() {
            let usable: Vec<u32> = (0..d.records.len() as u32)
                .filter(|&i| d.usable[i as usize])
                .collect();
            let held = (recipe.validation * usable.len() as f64).floor() as usize;
            let perm = SplitMix64::derive(recipe.seed, &format!("validation:{}", d.name), 0)
                .permutation(usable.len());
            let mut is_val = vec![false; usable.len()];
            for &p in &perm[..held] {
                is_val[p as usize] = true;
                val.push(Pick {
                    component: ci as u32,
                    row: usable[p as usize],
                    epoch: 0,
                });
            }
            val_rows.push(held as u64);
            pools.push(
                usable
                    .iter()
                    .zip(&is_val)
                    .filter(|&(_, &v)| !v)
                    .map(|(&r, _)| r)
                    .collect(),
            );
        }

        // Quantities.
        let mut picks: Vec<Vec<Pick>> = vec![Vec::new(); data.len()];
        let mut fixed_rows = 0u64;
        for (ci, c) in recipe.components.iter().enumerate() {
            let pool = &pools[ci];
            let d = &data[ci];
            let need_rows = |what: &str| -> Result<()> {
                if pool.is_empty() {
                    Err(Error::Component {
                        component: c.name.clone(),
                        reason: format!(
                            "no rows left to sample for `{what}` after decontamination, the truncation policy and the validation split"
                        ),
                    })
                } else {
                    Ok(())
                }
            };
            let chosen = match c.quantity {
                Quantity::Rows(n) => {
                    need_rows("rows")?;
                    select_rows(recipe.seed, &c.name, pool, n)
                }
                Quantity::Epochs(e) => {
                    need_rows("epochs")?;
                    let n = (e * pool.len() as f64).round() as u64;
                    select_rows(recipe.seed, &c.name, pool, n)
                }
                Quantity::Tokens(t) => {
                    need_rows("tokens")?;
                    let toks: Vec<u64> = (0..d.records.len()).map(|i| effective(d, i)).collect();
                    select_tokens(recipe.seed, &c.name, pool, &toks, t)
                }
                Quantity::Weight(_) => continue,
            };
            fixed_rows += chosen.len() as u64;
            picks[ci] = chosen;
        }
        let weights: Vec<(usize, f64)> = recipe
            .components
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c.quantity {
                Quantity::Weight(w) => Some((i, w)),
                _ => None,
            })
            .collect();
        if !weights.is_empty() {
            let wsum: f64 = weights.iter().map(|&(_, w)| w).sum();
            let total = if weights.len() == recipe.components.len() {
                match recipe.total_rows {
                    Some(t) => t as f64,
                    None => weights
                        .iter()
                        .map(|&(i, w)| pools[i].len() as f64 / w)
                        .fold(f64::INFINITY, f64::min)
                        .floor(),
                }
            } else {
                fixed_rows as f64 / (1.0 - wsum)
            };
            for &(ci, w) in &weights {
                let n = (w * total).round() as u64;
                if n > 0 && pools[ci].is_empty() {
                    return Err(Error::Component {
                        component: recipe.components[ci].name.clone(),
                        reason: "no rows left to sample for `weight` after decontamination, the truncation policy and the validation split".into(),
                    });
                }
                picks[ci] = select_rows(recipe.seed, &recipe.components[ci].name, &pools[ci], n);
            }
        }

        // Blend.
        let mut train: Vec<Pick> = Vec::new();
        for (ci, p) in picks.iter().enumerate() {
            train.extend(p.iter().map(|x| Pick {
                component: ci as u32,
                ..*x
            }));
        }
        if train.is_empty() {
            return Err(Error::Dataset(format!(
                "recipe `{}` selects no rows",
                recipe.name
            )));
        }
        SplitMix64::derive(recipe.seed, "blend", 0).shuffle(&mut train);
        SplitMix64::derive(recipe.seed, "blend", 1).shuffle(&mut val);

        // The error policy: any selected row over the limit or without supervision fails.
        if enforce && kind != Kind::Document && recipe.truncation == TruncationPolicy::Error {
            let mut bad: Vec<&Pick> = Vec::new();
            let mut seen = HashSet::new();
            for p in train.iter().chain(&val) {
                let t = data[p.component as usize].tokens[p.row as usize];
                if (t.tokens as usize > max || t.supervised == 0)
                    && seen.insert((p.component, p.row))
                {
                    bad.push(p);
                }
            }
            bad.sort_by_key(|p| (p.component, p.row));
            if let Some(first) = bad.first() {
                let d = &data[first.component as usize];
                let t = d.tokens[first.row as usize];
                let id = d.records[first.row as usize].id().to_string();
                if t.supervised == 0 {
                    return Err(Error::Row {
                        component: d.name.clone(),
                        row: first.row as usize,
                        id,
                        reason:
                            "no assistant turn, so no supervised tokens (truncation policy `error`)"
                                .into(),
                    });
                }
                return Err(Error::TooLong {
                    count: bad.len() as u64,
                    component: d.name.clone(),
                    id,
                    tokens: t.tokens as usize,
                    max,
                });
            }
        }

        // Per-component plan.
        let total_rows = train.len() as f64;
        let total_tokens: u64 = train
            .iter()
            .map(|p| effective(&data[p.component as usize], p.row as usize))
            .sum();
        let mut components = Vec::new();
        for (ci, c) in recipe.components.iter().enumerate() {
            let d = &data[ci];
            let p = &picks[ci];
            let tokens: u64 = p.iter().map(|x| effective(d, x.row as usize)).sum();
            let unique: HashSet<u32> = p.iter().map(|x| x.row).collect();
            components.push(ComponentPlan {
                name: c.name.clone(),
                kind: d.kind,
                quantity: c.quantity,
                inputs: d.inputs.iter().map(Manifest::id).collect(),
                licenses: d
                    .inputs
                    .iter()
                    .map(|m| m.license.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                query_rows: d.records.len() as u64,
                removed_contaminated: contaminated[ci],
                removed_policy: policy_removed[ci],
                validation_rows: val_rows[ci],
                pool_rows: pools[ci].len() as u64,
                rows: p.len() as u64,
                unique_rows: unique.len() as u64,
                tokens,
                epochs: if pools[ci].is_empty() {
                    0.0
                } else {
                    p.len() as f64 / pools[ci].len() as f64
                },
                share_rows: p.len() as f64 / total_rows,
                share_tokens: if total_tokens == 0 {
                    0.0
                } else {
                    tokens as f64 / total_tokens as f64
                },
            });
        }
        let inputs = njp_catalog::store::parents_of(data.iter().flat_map(|d| d.inputs.iter()));
        Ok(Plan {
            recipe: recipe.clone(),
            recipe_hash: recipe.hash(),
            tokenizer: tokenizer.to_string(),
            tokenizer_hash: tokenizer_hash.to_string(),
            kind,
            data,
            components,
            train,
            val,
            removed,
            decontamination: decon,
            licenses,
            inputs,
        })
    }

    /// The audit of the training blend (every row as trained, repeats included).
    pub fn audit(&self, target: &str) -> Audit {
        let rows: Vec<RowTokens> = self
            .train
            .iter()
            .map(|p| self.data[p.component as usize].tokens[p.row as usize])
            .collect();
        let groups: Vec<usize> = self.train.iter().map(|p| p.component as usize).collect();
        let names: Vec<String> = self.data.iter().map(|d| d.name.clone()).collect();
        Audit::new(
            target,
            &rows,
            &groups,
            &names,
            self.recipe.max_seq_len,
            self.recipe.truncation,
        )
    }

    /// The license of the mixture: the inputs' licenses joined with `AND`, or `unknown`.
    pub fn license(&self) -> String {
        if self.licenses.contains("unknown") || self.licenses.is_empty() {
            return "unknown".into();
        }
        let v: Vec<String> = self
            .licenses
            .iter()
            .map(|l| {
                if l.contains(' ') {
                    format!("({l})")
                } else {
                    l.clone()
                }
            })
            .collect();
        v.join(" AND ")
    }

    /// The record of a pick as it is published (ids `component:epoch:source_id`).
    pub fn materialize(&self, p: &Pick) -> Record {
        let d = &self.data[p.component as usize];
        let r = &d.records[p.row as usize];
        let id = format!("{}:{}:{}", d.name, p.epoch, r.id());
        match r {
            Record::Document(doc) => {
                let mut doc = doc.clone();
                doc.id = id;
                Record::Document(doc)
            }
            other => {
                let mut c = other.to_conversation().expect("chat kinds convert");
                c.id = id;
                Record::Conversation(c)
            }
        }
    }
}

fn truncate_chars(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out.replace('\n', " ")
}

/// Splits a mixture row id `component:epoch:source_id` into its component.
pub fn component_of(id: &str) -> Option<&str> {
    id.split_once(':').map(|(c, _)| c)
}
