//! `njp sql`: read-only SQL over the catalog, printed or saved as a new dataset.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use njp_catalog::manifest::DatasetKind;
use njp_catalog::{Catalog, Draft, Source};
use njp_datasets::schema::{conform, from_batch, kind_of_schema};

use super::{Ctx, ExitStatus};
use crate::printer::Hint;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    Table,
    Csv,
    Json,
    Jsonl,
    Parquet,
}

/// Arguments of `njp sql`.
#[derive(Debug, clap::Args)]
pub(crate) struct SqlArgs {
    /// The query (`-` reads it from stdin). Tables: every dataset by name, `"name@2"` for an
    /// older version, `rejects."name@1"` for rejected rows, and `catalog` for the manifests.
    #[arg(value_name = "SQL")]
    pub(crate) query: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: OutputFormat,
    /// Write the result to FILE instead of stdout (atomically).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Rows shown by the table format (0 = all); other formats write every row.
    #[arg(long, default_value_t = 100)]
    pub(crate) max_rows: usize,
    /// Publish the result as a dataset NAME (lineage records the SQL and its inputs).
    #[arg(long, value_name = "NAME")]
    pub(crate) save: Option<String>,
    /// License of the saved dataset [default: the inputs' license when they all share one].
    #[arg(long, requires = "save")]
    pub(crate) license: Option<String>,
    /// Description of the saved dataset.
    #[arg(long, requires = "save")]
    pub(crate) description: Option<String>,
}

pub(crate) fn run(ctx: &Ctx, args: SqlArgs) -> anyhow::Result<ExitStatus> {
    let query = if args.query == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading the query from stdin")?;
        s
    } else {
        args.query.clone()
    };
    if args.format == OutputFormat::Parquet && args.out.is_none() && args.save.is_none() {
        bail!("--format parquet needs --out FILE");
    }
    let catalog = Catalog::open(&ctx.settings.home)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let q = match catalog.query(&query).await {
            Ok(q) => q,
            Err(e @ njp_catalog::Error::UnknownTable { .. }) => {
                return Err(anyhow::Error::new(e)
                    .context(Hint("list datasets with `njp catalog list`".into())));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(name) = &args.save {
            return save(ctx, &catalog, q, name, &args).await;
        }
        let schema: SchemaRef = q.frame.schema().inner().clone();
        let mut stream = q.frame.execute_stream().await?;
        let mut sink = Output::new(args.format, args.out.clone(), schema, args.max_rows)?;
        while let Some(batch) = stream.next().await {
            sink.write(&batch?)?;
        }
        sink.finish(ctx)?;
        Ok(ExitStatus::Success)
    })
}

async fn save(
    ctx: &Ctx,
    catalog: &Catalog,
    q: njp_catalog::sql::Query,
    name: &str,
    args: &SqlArgs,
) -> anyhow::Result<ExitStatus> {
    let license = match &args.license {
        Some(l) => l.clone(),
        None => {
            let mut licenses: Vec<&str> = q.inputs.iter().map(|m| m.license.as_str()).collect();
            licenses.sort_unstable();
            licenses.dedup();
            match licenses.as_slice() {
                [one] => one.to_string(),
                [] => {
                    bail!("--save needs --license: the query reads no dataset to inherit one from")
                }
                many => bail!(
                    "--save needs --license: the inputs have different licenses ({})",
                    many.join(", ")
                ),
            }
        }
    };
    let schema: SchemaRef = q.frame.schema().inner().clone();
    let kind = kind_of_schema(&schema).map_or(DatasetKind::Table, DatasetKind::Records);
    let mut staging = catalog.stage(name)?;
    let mut stream = q.frame.clone().execute_stream().await?;
    let mut row = 0usize;
    match kind {
        DatasetKind::Records(k) => {
            let mut sink = staging.sink(k)?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let records =
                    from_batch(&batch, k).with_context(|| format!("result rows {}..", row + 1))?;
                for r in &records {
                    row += 1;
                    r.validate().with_context(|| {
                        format!(
                            "result row {row} (id `{}`) is not a valid {k} record",
                            r.id()
                        )
                    })?;
                    sink.push(r)?;
                }
                debug_assert!(conform(&batch, k).is_ok());
            }
            staging.finish_sink(sink)?;
        }
        DatasetKind::Table => {
            let path = staging.next_part_path();
            let file = std::fs::File::create(&path).with_context(|| path.display().to_string())?;
            let mut w = parquet::arrow::ArrowWriter::try_new(
                file,
                schema,
                Some(njp_datasets::io::writer_properties()),
            )?;
            while let Some(batch) = stream.next().await {
                w.write(&batch?)?;
            }
            w.into_inner()?.sync_all()?;
        }
    }
    let mut draft = Draft::new(kind, license, Source::Derived { how: "sql".into() });
    draft.parents = q.parents();
    draft.eval_only = q.inputs.iter().any(|m| m.eval_only);
    draft.description = args.description.clone();
    draft.parameters = serde_json::json!({ "command": "sql", "sql": q.sql });
    let m = staging.publish(draft)?;
    ctx.printer.info(format!(
        "published {} ({} rows, {} kind, license {}, from {})",
        m.id(),
        m.rows,
        m.kind,
        m.license,
        if m.parents.is_empty() {
            "no datasets".to_string()
        } else {
            m.parents
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    if m.eval_only {
        ctx.printer.warn(format!(
            "{} reads evaluation-only data, so it is marked eval-only too",
            m.id()
        ));
    }
    Ok(ExitStatus::Success)
}

/// Where result batches go.
enum Output {
    Table {
        table: crate::table::Table,
        shown: usize,
        total: usize,
        max: usize,
        out: Target,
    },
    Csv(arrow::csv::Writer<Target>),
    Json(arrow::json::ArrayWriter<Target>),
    Jsonl(arrow::json::LineDelimitedWriter<Target>),
    Parquet(parquet::arrow::ArrowWriter<Target>),
}

impl Output {
    fn new(
        format: OutputFormat,
        out: Option<PathBuf>,
        schema: SchemaRef,
        max: usize,
    ) -> anyhow::Result<Self> {
        let target = Target::new(out)?;
        Ok(match format {
            OutputFormat::Table => {
                let header = schema.fields().iter().map(|f| f.name().clone()).collect();
                Output::Table {
                    table: crate::table::Table::new(header),
                    shown: 0,
                    total: 0,
                    max,
                    out: target,
                }
            }
            OutputFormat::Csv => {
                if let Some(f) = schema.fields().iter().find(|f| f.data_type().is_nested()) {
                    bail!(
                        "column `{}` is nested ({}); CSV cannot hold it: use --format json or jsonl",
                        f.name(),
                        f.data_type()
                    );
                }
                Output::Csv(
                    arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(target),
                )
            }
            OutputFormat::Json => Output::Json(arrow::json::ArrayWriter::new(target)),
            OutputFormat::Jsonl => Output::Jsonl(arrow::json::LineDelimitedWriter::new(target)),
            OutputFormat::Parquet => Output::Parquet(parquet::arrow::ArrowWriter::try_new(
                target,
                schema,
                Some(njp_datasets::io::writer_properties()),
            )?),
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        match self {
            Output::Table {
                table,
                shown,
                total,
                max,
                ..
            } => {
                *total += batch.num_rows();
                let take = if *max == 0 {
                    batch.num_rows()
                } else {
                    (*max - *shown).min(batch.num_rows())
                };
                if take > 0 {
                    table.push_batch(&batch.slice(0, take))?;
                    *shown += take;
                }
            }
            Output::Csv(w) => w.write(batch)?,
            Output::Json(w) => w.write(batch)?,
            Output::Jsonl(w) => w.write(batch)?,
            Output::Parquet(w) => w.write(batch)?,
        }
        Ok(())
    }

    fn finish(self, ctx: &Ctx) -> anyhow::Result<()> {
        let target = match self {
            Output::Table {
                table,
                shown,
                total,
                out: mut target,
                ..
            } => {
                target.write_all(table.render().as_bytes())?;
                let rows = if total == 1 {
                    "1 row".to_string()
                } else {
                    format!("{total} rows")
                };
                if shown < total {
                    ctx.printer.info(format!("{rows}, showing the first {shown} (use --max-rows 0 for all, or --format csv|jsonl)"));
                } else {
                    ctx.printer.info(rows);
                }
                target
            }
            Output::Csv(w) => w.into_inner(),
            Output::Json(mut w) => {
                w.finish()?;
                let mut t = w.into_inner();
                t.write_all(b"\n")?;
                t
            }
            Output::Jsonl(mut w) => {
                w.finish()?;
                w.into_inner()
            }
            Output::Parquet(w) => w.into_inner()?,
        };
        target.commit()
    }
}

/// stdout, or a temp file renamed into place on success (removed if never committed).
pub(crate) enum Target {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File(FileTarget),
}

pub(crate) struct FileTarget {
    tmp: PathBuf,
    path: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl Target {
    pub(crate) fn new(out: Option<PathBuf>) -> anyhow::Result<Self> {
        Ok(match out {
            None => Target::Stdout(std::io::BufWriter::new(std::io::stdout())),
            Some(path) => {
                let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
                let file = std::fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?;
                Target::File(FileTarget {
                    tmp,
                    path,
                    file: Some(std::io::BufWriter::new(file)),
                })
            }
        })
    }

    pub(crate) fn commit(self) -> anyhow::Result<()> {
        match self {
            Target::Stdout(mut w) => Ok(w.flush()?),
            Target::File(mut t) => {
                let file = t
                    .file
                    .take()
                    .expect("not committed yet")
                    .into_inner()
                    .map_err(|e| e.into_error())?;
                file.sync_all()?;
                std::fs::rename(&t.tmp, &t.path)
                    .with_context(|| format!("writing {}", t.path.display()))?;
                Ok(())
            }
        }
    }
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Target::Stdout(w) => w.write(buf),
            Target::File(t) => t.file.as_mut().expect("open").write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Target::Stdout(w) => w.flush(),
            Target::File(t) => t.file.as_mut().expect("open").flush(),
        }
    }
}

impl Drop for FileTarget {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
