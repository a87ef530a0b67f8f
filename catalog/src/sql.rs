//! SQL over the catalog with DataFusion.
//!
//! Every dataset is a table under its name (latest version); `"name@2"` (quoted) addresses an
//! older version, `rejects.name` a version's rejected rows, and `catalog` lists every manifest.
//! Only the tables a statement references are registered, so a query over one dataset does not
//! open the others. Statements are read-only: anything but a query (or `EXPLAIN` of one) is
//! refused before planning, and the plan is checked again with DataFusion's [`SQLOptions`].

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;

use crate::error::{Error, Result};
use crate::manifest::{Manifest, Parent};
use crate::store::{Catalog, DatasetRef};

/// A planned query and the dataset versions it reads.
pub struct Query {
    pub sql: String,
    pub frame: DataFrame,
    /// Dataset versions the query reads (its lineage when saved).
    pub inputs: Vec<Manifest>,
    pub ctx: SessionContext,
}

impl Query {
    pub fn parents(&self) -> Vec<Parent> {
        crate::store::parents_of(&self.inputs)
    }
}

/// The session configuration used for catalog queries.
pub fn session_config() -> SessionConfig {
    SessionConfig::new().with_information_schema(true)
}

impl Catalog {
    /// Parses, checks and plans one read-only statement, registering the tables it names.
    pub async fn query(&self, sql: &str) -> Result<Query> {
        let ctx = SessionContext::new_with_config(session_config());
        self.query_in(&ctx, sql).await
    }

    /// Like [`Catalog::query`] in an existing session (tables it already has are kept).
    pub async fn query_in(&self, ctx: &SessionContext, sql: &str) -> Result<Query> {
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state
            .sql_to_statement(sql, &dialect)
            .map_err(|e| Error::Sql(e.strip_backtrace()))?;
        check_read_only(&statement)?;
        let references = state.resolve_table_references(&statement)?;
        let mut inputs = Vec::new();
        for reference in references {
            if let Some(m) = self.register(ctx, &reference).await?
                && !inputs.iter().any(|x: &Manifest| x.id() == m.id())
            {
                inputs.push(m);
            }
        }
        let plan = ctx
            .state()
            .statement_to_plan(statement)
            .await
            .map_err(|e| Error::Sql(e.strip_backtrace()))?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| Error::ReadOnly {
                statement: e.strip_backtrace(),
            })?;
        let frame = ctx.execute_logical_plan(plan).await?;
        Ok(Query {
            sql: sql.to_string(),
            frame,
            inputs,
            ctx: ctx.clone(),
        })
    }

    /// Every table name a query can use.
    pub fn table_names(&self) -> Result<Vec<String>> {
        let mut names = vec!["catalog".to_string()];
        for m in self.list_all()? {
            if self.versions(&m.name)?.last() == Some(&m.version) {
                names.push(m.name.clone());
            }
            names.push(format!("\"{}\"", m.id()));
            if m.rejects > 0 {
                names.push(format!("rejects.\"{}\"", m.id()));
            }
        }
        Ok(names)
    }

    async fn register(
        &self,
        ctx: &SessionContext,
        reference: &TableReference,
    ) -> Result<Option<Manifest>> {
        let table = reference.table();
        let unknown = || -> Result<Option<Manifest>> {
            Err(Error::UnknownTable {
                table: reference.to_string(),
                known: self.table_names()?,
            })
        };
        match reference.schema() {
            Some("information_schema") => return Ok(None),
            Some("rejects") => {
                let Ok(m) = self.resolve(table) else {
                    return unknown();
                };
                let Some(path) = self.rejects_file(&m) else {
                    return Err(Error::Sql(format!(
                        "dataset `{}` has no rejected rows",
                        m.id()
                    )));
                };
                let catalog = ctx.catalog("datafusion").expect("default catalog exists");
                if catalog.schema("rejects").is_none() {
                    catalog.register_schema("rejects", Arc::new(MemorySchemaProvider::new()))?;
                }
                if !ctx.table_exist(reference.clone())? {
                    ctx.register_parquet(
                        reference.clone(),
                        path.to_string_lossy().as_ref(),
                        ParquetReadOptions::default(),
                    )
                    .await?;
                }
                return Ok(Some(m));
            }
            Some("public") | None => {}
            Some(_) => return unknown(),
        }
        if ctx.table_exist(reference.clone())? {
            return Ok(None);
        }
        if table == "catalog" {
            ctx.register_batch(TableReference::bare("catalog"), self.catalog_batch()?)?;
            return Ok(None);
        }
        let Ok(r) = DatasetRef::parse(table) else {
            return unknown();
        };
        if self.versions(&r.name)?.is_empty() {
            return unknown();
        }
        let m = self.resolve(table)?;
        let dir = format!("{}/", self.data_dir(&m).display());
        ctx.register_parquet(reference.clone(), &dir, ParquetReadOptions::default())
            .await?;
        tracing::debug!(table, dataset = %m.id(), "registered");
        Ok(Some(m))
    }

    /// One row per dataset version, for the `catalog` table.
    pub fn catalog_batch(&self) -> Result<RecordBatch> {
        let all = self.list_all()?;
        let latest: std::collections::HashMap<&str, u32> =
            all.iter().map(|m| (m.name.as_str(), m.version)).collect();
        let s = |f: &dyn Fn(&Manifest) -> String| -> ArrayRef {
            Arc::new(all.iter().map(|m| Some(f(m))).collect::<StringArray>())
        };
        let schema = Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("version", DataType::UInt32, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("license", DataType::Utf8, false),
            Field::new("eval_only", DataType::Boolean, false),
            Field::new("commercial_use", DataType::Boolean, true),
            Field::new("rows", DataType::UInt64, false),
            Field::new("bytes", DataType::UInt64, false),
            Field::new("rejects", DataType::UInt64, false),
            Field::new("created", DataType::Utf8, false),
            Field::new("latest", DataType::Boolean, false),
            Field::new("source_type", DataType::Utf8, false),
            Field::new("source", DataType::Utf8, false),
            Field::new("parents", DataType::Utf8, false),
            Field::new("parameters", DataType::Utf8, false),
            Field::new("stats", DataType::Utf8, false),
            Field::new("tool_version", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            s(&|m| m.name.clone()),
            Arc::new(all.iter().map(|m| m.version).collect::<UInt32Array>()),
            s(&|m| m.kind.to_string()),
            s(&|m| m.license.clone()),
            Arc::new(
                all.iter()
                    .map(|m| Some(m.eval_only))
                    .collect::<BooleanArray>(),
            ),
            Arc::new(
                all.iter()
                    .map(|m| m.commercial_use)
                    .collect::<BooleanArray>(),
            ),
            Arc::new(all.iter().map(|m| m.rows).collect::<UInt64Array>()),
            Arc::new(all.iter().map(|m| m.bytes).collect::<UInt64Array>()),
            Arc::new(all.iter().map(|m| m.rejects).collect::<UInt64Array>()),
            s(&|m| m.created.clone()),
            Arc::new(
                all.iter()
                    .map(|m| Some(latest.get(m.name.as_str()) == Some(&m.version)))
                    .collect::<BooleanArray>(),
            ),
            s(&|m| m.source.type_name().to_string()),
            s(&|m| serde_json::to_string(&m.source).expect("serializes")),
            s(&|m| {
                m.parents
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            s(&|m| m.parameters.to_string()),
            s(&|m| serde_json::Value::Object(m.stats.clone()).to_string()),
            s(&|m| m.tool_version.clone()),
            Arc::new(
                all.iter()
                    .map(|m| m.description.clone())
                    .collect::<StringArray>(),
            ),
        ];
        Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
    }
}

/// Refuses anything but a query before it is planned.
fn check_read_only(statement: &DfStatement) -> Result<()> {
    let refuse = |what: String| Err(Error::ReadOnly { statement: what });
    match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            Statement::Query(_) => Ok(()),
            Statement::Explain { statement, .. } => match statement.as_ref() {
                Statement::Query(_) => Ok(()),
                other => refuse(statement_name(other)),
            },
            Statement::ShowTables { .. } | Statement::ShowColumns { .. } => Ok(()),
            other => refuse(statement_name(other)),
        },
        DfStatement::Explain(e) => check_read_only(&e.statement),
        DfStatement::CopyTo(_) => refuse("COPY".into()),
        DfStatement::CreateExternalTable(_) => refuse("CREATE EXTERNAL TABLE".into()),
        DfStatement::Reset(_) => refuse("RESET".into()),
    }
}

/// The leading keywords of a statement (`INSERT`, `CREATE TABLE`, `DROP`…) for messages.
fn statement_name(s: &Statement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [first, second, ..]
            if matches!(
                first.to_ascii_uppercase().as_str(),
                "CREATE" | "ALTER" | "DROP"
            ) =>
        {
            format!(
                "{} {}",
                first.to_ascii_uppercase(),
                second.to_ascii_uppercase()
            )
        }
        [first, ..] => first.to_ascii_uppercase(),
        [] => "empty".into(),
    }
}
