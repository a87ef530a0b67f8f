//! Publishing a planned mixture: the records in blend order (`NAME`), the held-out rows
//! (`NAME_val`) and the blend index (`NAME_blend`), each through a catalog staging directory.
//!
//! The blend index and validation set are published first and the mixture itself last, so the
//! mixture appears only when everything it describes exists. A build that is interrupted leaves
//! nothing but its staging directories (removed on drop, or by `njp catalog gc` after a kill);
//! running it again rebuilds from the start. A build whose recipe hash, tokenizer hash and input
//! versions equal those of the latest published mixture is up to date and publishes nothing.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use njp_catalog::manifest::DatasetKind;
use njp_catalog::{Catalog, Draft, Manifest, Source};
use parquet::arrow::ArrowWriter;

use crate::error::{Error, Result};
use crate::plan::{Pick, Plan, Removed};

/// What a build published.
#[derive(Debug)]
pub struct Built {
    pub mixture: Manifest,
    pub validation: Option<Manifest>,
    pub blend: Manifest,
    /// True when an identical mixture already existed and nothing was published.
    pub up_to_date: bool,
}

/// The lineage parameters of a plan (what makes two builds the same).
pub fn lineage(plan: &Plan, role: &str) -> serde_json::Value {
    serde_json::json!({
        "mix": {
            "role": role,
            "recipe": plan.recipe,
            "recipe_hash": plan.recipe_hash,
            "tokenizer": plan.tokenizer,
            "tokenizer_hash": plan.tokenizer_hash,
            "inputs": plan.inputs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }
    })
}

fn same_build(m: &Manifest, plan: &Plan) -> bool {
    let p = &m.parameters["mix"];
    p["recipe_hash"] == plan.recipe_hash.as_str()
        && p["tokenizer_hash"] == plan.tokenizer_hash.as_str()
        && p["inputs"] == lineage(plan, "train")["mix"]["inputs"]
}

fn write_table(path: &Path, batch: &RecordBatch) -> Result<()> {
    let perr = |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(crate::error::io_err(path))?;
    let mut w = ArrowWriter::try_new(
        BufWriter::new(file),
        batch.schema(),
        Some(njp_datasets::io::writer_properties()),
    )
    .map_err(perr)?;
    w.write(batch).map_err(perr)?;
    w.close().map_err(perr)?;
    Ok(())
}

fn blend_batch(plan: &Plan) -> Result<RecordBatch> {
    let schema = Schema::new(vec![
        Field::new("position", DataType::UInt64, false),
        Field::new("split", DataType::Utf8, false),
        Field::new("component", DataType::Utf8, false),
        Field::new("dataset", DataType::Utf8, false),
        Field::new("row_id", DataType::Utf8, false),
        Field::new("epoch", DataType::UInt32, false),
        Field::new("tokens", DataType::UInt32, false),
        Field::new("supervised", DataType::UInt32, false),
    ]);
    let rows: Vec<(&str, u64, &Pick)> = plan
        .train
        .iter()
        .enumerate()
        .map(|(i, p)| ("train", i as u64, p))
        .chain(
            plan.val
                .iter()
                .enumerate()
                .map(|(i, p)| ("validation", i as u64, p)),
        )
        .collect();
    let datasets: Vec<String> = plan.data.iter().map(|d| d.dataset()).collect();
    let d = |p: &Pick| &plan.data[p.component as usize];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| r.1).collect::<UInt64Array>()),
        Arc::new(rows.iter().map(|r| Some(r.0)).collect::<StringArray>()),
        Arc::new(
            rows.iter()
                .map(|r| Some(d(r.2).name.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| Some(datasets[r.2.component as usize].as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| Some(d(r.2).records[r.2.row as usize].id()))
                .collect::<StringArray>(),
        ),
        Arc::new(rows.iter().map(|r| r.2.epoch).collect::<UInt32Array>()),
        Arc::new(
            rows.iter()
                .map(|r| d(r.2).tokens[r.2.row as usize].tokens)
                .collect::<UInt32Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| d(r.2).tokens[r.2.row as usize].supervised)
                .collect::<UInt32Array>(),
        ),
    ];
    Ok(RecordBatch::try_new(Arc::new(schema), columns).map_err(njp_catalog::Error::from)?)
}

/// The removed rows as a table (`rejects."NAME@v"` in SQL).
pub fn removed_batch(removed: &[Removed]) -> Result<RecordBatch> {
    let schema = Schema::new(vec![
        Field::new("component", DataType::Utf8, false),
        Field::new("row_id", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("eval_dataset", DataType::Utf8, true),
        Field::new("eval_id", DataType::Utf8, true),
    ]);
    let s = |f: &dyn Fn(&Removed) -> Option<String>| -> ArrayRef {
        Arc::new(removed.iter().map(f).collect::<StringArray>())
    };
    let columns = vec![
        s(&|r| Some(r.component.clone())),
        s(&|r| Some(r.row_id.clone())),
        s(&|r| Some(r.reason.clone())),
        s(&|r| Some(r.detail.clone())),
        s(&|r| r.eval_dataset.clone()),
        s(&|r| r.eval_id.clone()),
    ];
    Ok(RecordBatch::try_new(Arc::new(schema), columns).map_err(njp_catalog::Error::from)?)
}

fn draft(plan: &Plan, kind: DatasetKind, role: &str, description: String) -> Draft {
    let mut d = Draft::new(
        kind,
        plan.license(),
        Source::Derived {
            how: format!("njp mix build ({role})"),
        },
    );
    d.parents = plan.inputs.clone();
    d.parameters = lineage(plan, role);
    d.description = Some(description);
    d
}

/// Publishes a plan (unless an identical mixture exists and `force` is false).
pub fn build(catalog: &Catalog, plan: &Plan, force: bool) -> Result<Built> {
    let name = &plan.recipe.name;
    if !force
        && let Ok(m) = catalog.resolve(name)
        && same_build(&m, plan)
    {
        let blend = catalog.resolve(&plan.recipe.blend_name())?;
        let validation = catalog.resolve(&plan.recipe.val_name()).ok();
        return Ok(Built {
            mixture: m,
            validation,
            blend,
            up_to_date: true,
        });
    }
    let summary = serde_json::json!({
        "components": plan.components,
        "train_rows": plan.train.len(),
        "validation_rows": plan.val.len(),
        "licenses": plan.licenses,
        "decontamination": plan.decontamination,
    });
    let desc = plan
        .recipe
        .description
        .clone()
        .unwrap_or_else(|| format!("mixture `{name}`"));

    // Stage everything first.
    let mut main = catalog.stage(name)?;
    let mut sink = main.sink(plan.kind)?;
    for p in &plan.train {
        sink.push(&plan.materialize(p))?;
    }
    main.finish_sink(sink)?;
    if !plan.removed.is_empty() {
        write_table(&main.rejects_path(), &removed_batch(&plan.removed)?)?;
    }
    let val_stage = if plan.val.is_empty() {
        None
    } else {
        let mut s = catalog.stage(&plan.recipe.val_name())?;
        let mut sink = s.sink(plan.kind)?;
        for p in &plan.val {
            sink.push(&plan.materialize(p))?;
        }
        s.finish_sink(sink)?;
        Some(s)
    };
    let mut blend = catalog.stage(&plan.recipe.blend_name())?;
    let path = blend.next_part_path();
    write_table(&path, &blend_batch(plan)?)?;

    // Publish: blend index, validation, then the mixture.
    let mut d = draft(
        plan,
        DatasetKind::Table,
        "blend",
        format!("blend index of `{name}` (position, split, component, dataset, row_id, epoch)"),
    );
    d.stats.insert("mix".into(), summary.clone());
    let blend = blend.publish(d)?;
    let validation = match val_stage {
        None => None,
        Some(s) => {
            let d = draft(
                plan,
                plan.kind.into(),
                "validation",
                format!("validation rows held out of `{name}`"),
            );
            Some(s.publish(d)?)
        }
    };
    let mut d = draft(plan, plan.kind.into(), "train", desc);
    d.rejects = plan.removed.len() as u64;
    d.stats.insert("mix".into(), summary);
    d.stats.insert(
        "audit".into(),
        serde_json::to_value(plan.audit(name)).expect("audit serializes"),
    );
    let mixture = main.publish(d)?;
    Ok(Built {
        mixture,
        validation,
        blend,
        up_to_date: false,
    })
}
