//! `njp samples import`: publishes the samples bundled in the binary (see samples/ATTRIBUTION.md).

use njp_catalog::Catalog;
use njp_catalog::import::{ImportOptions, import};
use njp_catalog::manifest::Source;
use njp_datasets::Kind;
use njp_datasets::adapt::Mapping;
use njp_datasets::read::ReadOptions;
use sha2::{Digest, Sha256};

use super::{Ctx, ExitStatus};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SamplesCommand {
    /// Publish the bundled samples (sample_conversations, sample_mc, sample_math, sample_documents).
    Import {
        /// Publish a new version even when an identical one exists.
        #[arg(long)]
        force: bool,
    },
    /// List the bundled samples.
    List,
}

/// A sample compiled into the binary.
pub(crate) struct Sample {
    pub(crate) name: &'static str,
    pub(crate) file: &'static str,
    pub(crate) kind: Kind,
    pub(crate) license: &'static str,
    pub(crate) eval_only: bool,
    pub(crate) description: &'static str,
    pub(crate) bytes: &'static [u8],
}

pub(crate) const SAMPLES: &[Sample] = &[
    Sample {
        name: "sample_conversations",
        file: "conversations.jsonl",
        kind: Kind::Conversation,
        license: "CC-BY-SA-4.0",
        eval_only: false,
        description: "RealPersonaChat v1.0.0 dialogues as user/assistant chats (150)",
        bytes: include_bytes!("../../samples/conversations.jsonl"),
    },
    Sample {
        name: "sample_mc",
        file: "mc.jsonl",
        kind: Kind::MultipleChoice,
        license: "CC-BY-SA-4.0",
        eval_only: false,
        description: "JCommonsenseQA v1.3 train, first 500 rows",
        bytes: include_bytes!("../../samples/mc.jsonl"),
    },
    Sample {
        name: "sample_math",
        file: "math.jsonl",
        kind: Kind::Math,
        license: "Apache-2.0",
        eval_only: false,
        description: "MAWPS-ja with synthesized calculator solutions (300)",
        bytes: include_bytes!("../../samples/math.jsonl"),
    },
    Sample {
        name: "sample_documents",
        file: "documents.jsonl",
        kind: Kind::Document,
        license: "LicenseRef-PublicDomain",
        eval_only: false,
        description: "Aozora Bunko texts by Natsume Soseki and Akutagawa Ryunosuke (75 documents)",
        bytes: include_bytes!("../../samples/documents.jsonl"),
    },
];

pub(crate) fn run(ctx: &Ctx, cmd: SamplesCommand) -> anyhow::Result<ExitStatus> {
    let p = &ctx.printer;
    match cmd {
        SamplesCommand::List => {
            for s in SAMPLES {
                p.out(format!(
                    "{:<22} {:<13} {:<24} {}",
                    s.name,
                    s.kind.as_str(),
                    s.license,
                    s.description
                ))?;
            }
            Ok(ExitStatus::Success)
        }
        SamplesCommand::Import { force } => {
            let catalog = Catalog::open(&ctx.settings.home)?;
            let tmp = tempfile::Builder::new()
                .prefix("samples.")
                .tempdir_in(catalog.home().join("staging"))?;
            let mut status = ExitStatus::Success;
            for s in SAMPLES {
                let sha = hex::encode(Sha256::digest(s.bytes));
                if !force && let Ok(m) = catalog.resolve(s.name) {
                    let same = matches!(&m.source, Source::Local { files } if files.iter().any(|f| f.sha256 == sha));
                    if same {
                        p.info(format!("{} is up to date", m.id()));
                        continue;
                    }
                }
                let path = tmp.path().join(s.file);
                std::fs::write(&path, s.bytes)?;
                let opts = ImportOptions {
                    name: s.name.to_string(),
                    kind: s.kind,
                    license: s.license.to_string(),
                    read: ReadOptions::default(),
                    mapping: Mapping::default(),
                    max_reject_ratio: 0.0,
                    eval_only: s.eval_only,
                    commercial_use: None,
                    description: Some(s.description.to_string()),
                    path_labels: vec![format!("samples/{} (bundled)", s.file)],
                };
                let report = import(&catalog, &[path], &opts, &())?;
                if super::import::summarize(p, s.name, &report) != ExitStatus::Success {
                    status = ExitStatus::Failure;
                }
            }
            Ok(status)
        }
    }
}
