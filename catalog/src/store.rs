//! The catalog on disk.
//!
//! ```text
//! <home>/
//!   datasets/<name>/<version>/manifest.json
//!                             data/part-00000.parquet …
//!                             rejects.parquet            (when rows were refused)
//!   datasets/<name>/.removed-<version>                  (tombstones: numbers are never reused)
//!   staging/<name>.<pid>.<nanos>/                        (builds in progress, invisible)
//! ```
//!
//! Publishing is atomic: a build writes into a staging directory, fsyncs every file and the
//! directory, then renames it to `datasets/<name>/<version>`. A killed build leaves only a
//! staging directory, which no reader looks at and `gc` removes.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use njp_datasets::io::{ParquetRecords, ParquetSink};
use njp_datasets::{Kind, Record};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, io_err};
use crate::manifest::{DataFile, Draft, Manifest, Parent, check_license, check_name};

const MANIFEST: &str = "manifest.json";
const REJECTS: &str = "rejects.parquet";

/// A local dataset catalog rooted at a home directory.
#[derive(Debug, Clone)]
pub struct Catalog {
    home: PathBuf,
}

/// `name` or `name@version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRef {
    pub name: String,
    pub version: Option<u32>,
}

impl DatasetRef {
    pub fn parse(s: &str) -> Result<Self> {
        match s.split_once('@') {
            None => Ok(DatasetRef {
                name: s.to_string(),
                version: None,
            }),
            Some((name, v)) => {
                let version = v.parse::<u32>().map_err(|_| Error::InvalidRef {
                    reference: s.to_string(),
                    reason: format!("`{v}` is not a version number"),
                })?;
                Ok(DatasetRef {
                    name: name.to_string(),
                    version: Some(version),
                })
            }
        }
    }
}

impl std::fmt::Display for DatasetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// What `gc` removed.
#[derive(Debug, Default)]
pub struct GcReport {
    pub removed: Vec<PathBuf>,
    pub bytes: u64,
    /// Staging directories left alone because their build is still running.
    pub in_progress: Vec<PathBuf>,
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `home`.
    pub fn open(home: impl Into<PathBuf>) -> Result<Self> {
        let home = home.into();
        for dir in [home.join("datasets"), home.join("staging")] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(Catalog { home })
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    fn datasets_dir(&self) -> PathBuf {
        self.home.join("datasets")
    }

    fn version_dir(&self, name: &str, version: u32) -> PathBuf {
        self.datasets_dir().join(name).join(version.to_string())
    }

    /// Every published version of every dataset, sorted by name then version.
    pub fn list_all(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        let dir = self.datasets_dir();
        for name in sorted_entries(&dir)? {
            for version in self.versions(&name)? {
                out.push(self.manifest(&name, version)?);
            }
        }
        Ok(out)
    }

    /// The latest version of every dataset.
    pub fn list(&self) -> Result<Vec<Manifest>> {
        let mut latest: BTreeMap<String, Manifest> = BTreeMap::new();
        for m in self.list_all()? {
            latest.insert(m.name.clone(), m);
        }
        Ok(latest.into_values().collect())
    }

    /// Names of every dataset with at least one version.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for name in sorted_entries(&self.datasets_dir())? {
            if !self.versions(&name)?.is_empty() {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Published versions of `name`, ascending.
    pub fn versions(&self, name: &str) -> Result<Vec<u32>> {
        let dir = self.datasets_dir().join(name);
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut versions: Vec<u32> = sorted_entries(&dir)?
            .into_iter()
            .filter_map(|e| e.parse::<u32>().ok())
            .filter(|v| dir.join(v.to_string()).join(MANIFEST).is_file())
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    fn manifest(&self, name: &str, version: u32) -> Result<Manifest> {
        let path = self.version_dir(name, version).join(MANIFEST);
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        serde_json::from_str(&text).map_err(|source| Error::BadManifest { path, source })
    }

    /// Resolves `name` (latest version) or `name@version`.
    pub fn resolve(&self, reference: &str) -> Result<Manifest> {
        let r = DatasetRef::parse(reference)?;
        let versions = self.versions(&r.name)?;
        let Some(&latest) = versions.last() else {
            return Err(Error::NotFound {
                name: r.name,
                known: self.names()?,
            });
        };
        match r.version {
            None => self.manifest(&r.name, latest),
            Some(v) if versions.contains(&v) => self.manifest(&r.name, v),
            Some(v) => Err(Error::VersionNotFound {
                name: r.name,
                version: v,
                available: versions,
            }),
        }
    }

    /// Absolute paths of a version's data files.
    pub fn data_files(&self, m: &Manifest) -> Vec<PathBuf> {
        let dir = self.version_dir(&m.name, m.version);
        m.files.iter().map(|f| dir.join(&f.path)).collect()
    }

    /// The directory holding a version's data files (a SQL listing table location).
    pub fn data_dir(&self, m: &Manifest) -> PathBuf {
        self.version_dir(&m.name, m.version).join("data")
    }

    /// The rejects file of a version, when rows were refused.
    pub fn rejects_file(&self, m: &Manifest) -> Option<PathBuf> {
        let p = self.version_dir(&m.name, m.version).join(REJECTS);
        p.is_file().then_some(p)
    }

    /// Streams the records of a dataset of a canonical kind, file after file.
    pub fn records(&self, m: &Manifest) -> Result<impl Iterator<Item = Result<Record>> + use<>> {
        let kind = m.kind.record_kind().ok_or_else(|| Error::NotRecords {
            dataset: m.id(),
            kind: m.kind,
        })?;
        let files = self.data_files(m);
        Ok(files
            .into_iter()
            .flat_map(move |path| -> Box<dyn Iterator<Item = Result<Record>>> {
                match ParquetRecords::open(&path, kind) {
                    Ok(r) => Box::new(r.map(|x| x.map_err(Error::from))),
                    Err(e) => Box::new(std::iter::once(Err(e.into()))),
                }
            }))
    }

    /// Starts a new version of `name`. Write data with [`Staging::sink`] (or into
    /// [`Staging::data_dir`]), then [`Staging::publish`]. Dropping a staging without publishing
    /// removes it.
    pub fn stage(&self, name: &str) -> Result<Staging> {
        check_name(name).map_err(|reason| Error::InvalidName {
            name: name.to_string(),
            reason,
        })?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = self
            .home
            .join("staging")
            .join(format!("{name}.{}.{nanos}", std::process::id()));
        let data = dir.join("data");
        fs::create_dir_all(&data).map_err(io_err(&data))?;
        tracing::debug!(dir = %dir.display(), "staging");
        Ok(Staging {
            catalog: self.clone(),
            name: name.to_string(),
            dir,
            parts: 0,
            published: false,
            written: BTreeMap::new(),
        })
    }

    /// Rewrites one version's `stats[key]` (atomically; manifests are otherwise immutable).
    pub fn set_stats(&self, m: &Manifest, key: &str, value: serde_json::Value) -> Result<Manifest> {
        let mut current = self.manifest(&m.name, m.version)?;
        current.stats.insert(key.to_string(), value);
        let path = self.version_dir(&m.name, m.version).join(MANIFEST);
        write_atomic(
            &path,
            serde_json::to_string_pretty(&current)
                .expect("manifest serializes")
                .as_bytes(),
        )?;
        Ok(current)
    }

    /// Datasets whose lineage names `parent` (any version of it when `version` is `None`).
    pub fn dependents(&self, name: &str, version: Option<u32>) -> Result<Vec<Manifest>> {
        Ok(self
            .list_all()?
            .into_iter()
            .filter(|m| {
                m.parents
                    .iter()
                    .any(|p| p.name == name && version.is_none_or(|v| p.version == v))
            })
            .collect())
    }

    /// Removes one version (`name@v`) or every version (`name`). Version numbers are never
    /// reused afterwards.
    pub fn remove(&self, reference: &str) -> Result<Vec<Manifest>> {
        let r = DatasetRef::parse(reference)?;
        let targets = match r.version {
            Some(_) => vec![self.resolve(reference)?],
            None => {
                let all: Vec<Manifest> = self
                    .list_all()?
                    .into_iter()
                    .filter(|m| m.name == r.name)
                    .collect();
                if all.is_empty() {
                    return Err(Error::NotFound {
                        name: r.name,
                        known: self.names()?,
                    });
                }
                all
            }
        };
        for m in &targets {
            let src = self.version_dir(&m.name, m.version);
            let tomb = self
                .datasets_dir()
                .join(&m.name)
                .join(format!(".removed-{}", m.version));
            fs::write(&tomb, b"").map_err(io_err(&tomb))?;
            let trash = self.home.join("staging").join(format!(
                "trash.{}.{}.{}",
                m.name,
                m.version,
                std::process::id()
            ));
            fs::rename(&src, &trash).map_err(io_err(&src))?;
            fs::remove_dir_all(&trash).map_err(io_err(&trash))?;
            tracing::info!(dataset = %m.id(), "removed");
        }
        Ok(targets)
    }

    /// Removes staging directories left by killed builds (their process is gone, or they are
    /// older than `max_age` where process liveness cannot be checked).
    pub fn gc(&self, max_age: Duration) -> Result<GcReport> {
        let staging = self.home.join("staging");
        let mut report = GcReport::default();
        for entry in sorted_entries(&staging)? {
            let path = staging.join(&entry);
            let pid = entry
                .split('.')
                .nth_back(1)
                .and_then(|p| p.parse::<u32>().ok());
            let alive = match pid {
                Some(pid) if pid != std::process::id() && Path::new("/proc").is_dir() => {
                    Path::new("/proc").join(pid.to_string()).exists()
                }
                Some(pid) if pid == std::process::id() => true,
                _ => {
                    let age = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok());
                    age.is_none_or(|a| a < max_age)
                }
            };
            if alive {
                report.in_progress.push(path);
                continue;
            }
            report.bytes += dir_size(&path);
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
            report.removed.push(path);
        }
        Ok(report)
    }

    fn next_version(&self, name: &str) -> Result<u32> {
        let dir = self.datasets_dir().join(name);
        if !dir.is_dir() {
            return Ok(1);
        }
        let max = sorted_entries(&dir)?
            .iter()
            .filter_map(|e| e.strip_prefix(".removed-").unwrap_or(e).parse::<u32>().ok())
            .max()
            .unwrap_or(0);
        Ok(max + 1)
    }
}

/// A dataset version being built. Invisible until [`Staging::publish`].
#[derive(Debug)]
pub struct Staging {
    catalog: Catalog,
    name: String,
    dir: PathBuf,
    parts: usize,
    published: bool,
    /// Size, modification time and SHA-256 of data files finished through
    /// [`Staging::finish_sink`], taken as they were written: publishing then needs no second
    /// read of them.
    written: BTreeMap<PathBuf, (u64, Option<SystemTime>, String)>,
}

impl Staging {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where data files go; every `*.parquet` in it becomes part of the dataset.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Path of the next data file (`data/part-NNNNN.parquet`).
    pub fn next_part_path(&mut self) -> PathBuf {
        let p = self
            .data_dir()
            .join(format!("part-{:05}.parquet", self.parts));
        self.parts += 1;
        p
    }

    /// A Parquet writer for the next data file.
    pub fn sink(&mut self, kind: Kind) -> Result<ParquetSink> {
        let path = self.next_part_path();
        Ok(ParquetSink::create(&path, kind)?)
    }

    /// Finishes a sink created by [`Staging::sink`] and remembers the file's size and SHA-256
    /// for [`Staging::publish`]. Returns the rows written.
    pub fn finish_sink(&mut self, sink: ParquetSink) -> Result<u64> {
        let path = sink.path().to_path_buf();
        let w = sink.finish_written()?;
        let modified = fs::metadata(&path).map_err(io_err(&path))?.modified().ok();
        self.written.insert(path, (w.bytes, modified, w.sha256));
        Ok(w.rows)
    }

    /// Where the rejects table goes.
    pub fn rejects_path(&self) -> PathBuf {
        self.dir.join(REJECTS)
    }

    /// Writes the manifest, fsyncs, and atomically renames the staging directory into place.
    pub fn publish(mut self, draft: Draft) -> Result<Manifest> {
        check_license(&draft.license).map_err(|reason| Error::InvalidLicense {
            license: draft.license.clone(),
            reason,
        })?;
        let data_dir = self.data_dir();
        let mut files = Vec::new();
        let mut rows = 0;
        let mut bytes = 0;
        for entry in sorted_entries(&data_dir)? {
            if !entry.ends_with(".parquet") {
                continue;
            }
            let path = data_dir.join(&entry);
            let n = ParquetRecords::num_rows(&path)?;
            // A file finished through `finish_sink` was hashed as it was written; one whose
            // size or modification time changed since (rewritten) is hashed again.
            let meta = fs::metadata(&path).map_err(io_err(&path))?;
            let (sha256, size) = match self.written.get(&path) {
                Some((bytes, modified, sha256))
                    if *bytes == meta.len()
                        && modified.is_some()
                        && *modified == meta.modified().ok() =>
                {
                    (sha256.clone(), *bytes)
                }
                _ => sha256_file(&path)?,
            };
            fsync(&path)?;
            rows += n;
            bytes += size;
            files.push(DataFile {
                path: format!("data/{entry}"),
                rows: n,
                bytes: size,
                sha256,
            });
        }
        if files.is_empty() {
            return Err(Error::NoData {
                name: self.name.clone(),
            });
        }
        let rejects = self.rejects_path();
        if rejects.is_file() {
            fsync(&rejects)?;
        }
        let created = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("RFC 3339 formats");
        let mut manifest = Manifest {
            name: self.name.clone(),
            version: 0,
            kind: draft.kind,
            license: draft.license,
            eval_only: draft.eval_only,
            commercial_use: draft.commercial_use,
            description: draft.description,
            source: draft.source,
            rows,
            bytes,
            files,
            rejects: draft.rejects,
            created,
            tool_version: format!("njp {}", env!("CARGO_PKG_VERSION")),
            parents: draft.parents,
            parameters: draft.parameters,
            stats: draft.stats,
        };
        let parent_dir = self.catalog.datasets_dir().join(&self.name);
        fs::create_dir_all(&parent_dir).map_err(io_err(&parent_dir))?;
        // Another build may publish the same name concurrently: rename fails on a non-empty
        // target, so retry with the next number.
        for _ in 0..100 {
            manifest.version = self.catalog.next_version(&self.name)?;
            let text = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
            let mpath = self.dir.join(MANIFEST);
            write_synced(&mpath, text.as_bytes())?;
            fsync_dir(&data_dir)?;
            fsync_dir(&self.dir)?;
            let target = self.catalog.version_dir(&self.name, manifest.version);
            match fs::rename(&self.dir, &target) {
                Ok(()) => {
                    fsync_dir(&parent_dir)?;
                    self.published = true;
                    tracing::info!(dataset = %manifest.id(), rows, "published");
                    return Ok(manifest);
                }
                Err(e) if target.exists() => {
                    tracing::debug!(error = %e, "version {} taken, retrying", manifest.version);
                }
                Err(e) => {
                    return Err(Error::Io {
                        path: target,
                        source: e,
                    });
                }
            }
        }
        Err(Error::Io {
            path: parent_dir,
            source: std::io::Error::other("could not allocate a version number"),
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Parent references of a set of manifests, sorted and deduplicated.
pub fn parents_of<'a>(manifests: impl IntoIterator<Item = &'a Manifest>) -> Vec<Parent> {
    let mut v: Vec<Parent> = manifests.into_iter().map(Manifest::as_parent).collect();
    v.sort();
    v.dedup();
    v
}

fn sorted_entries(dir: &Path) -> Result<Vec<String>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// sha256 and size of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io_err(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

fn fsync(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(path))
}

fn fsync_dir(path: &Path) -> Result<()> {
    // Directories can be opened read-only and fsynced on Unix; elsewhere this is a no-op.
    #[cfg(unix)]
    fsync(path)?;
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(io_err(path))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io_err(path))
}

/// Writes a file atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(parent) = path.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

fn dir_size(path: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(path) else { return 0 };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Source;
    use njp_datasets::Document;

    fn doc(i: usize) -> Record {
        Record::Document(Document {
            id: i.to_string(),
            text: format!("本文{i}"),
            source: String::new(),
            meta: None,
        })
    }

    fn publish(cat: &Catalog, name: &str, n: usize) -> Manifest {
        let mut st = cat.stage(name).unwrap();
        let mut sink = st.sink(Kind::Document).unwrap();
        for i in 0..n {
            sink.push(&doc(i)).unwrap();
        }
        sink.finish().unwrap();
        st.publish(Draft::new(
            Kind::Document,
            "MIT",
            Source::Local { files: vec![] },
        ))
        .unwrap()
    }

    #[test]
    fn publish_resolve_remove() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let m1 = publish(&cat, "docs", 3);
        let m2 = publish(&cat, "docs", 5);
        assert_eq!((m1.version, m2.version), (1, 2));
        assert_eq!(cat.resolve("docs").unwrap().rows, 5);
        assert_eq!(cat.resolve("docs@1").unwrap().rows, 3);
        assert!(matches!(
            cat.resolve("docs@9"),
            Err(Error::VersionNotFound { .. })
        ));
        assert!(matches!(cat.resolve("nope"), Err(Error::NotFound { .. })));
        let recs: Vec<Record> = cat.records(&m2).unwrap().map(Result::unwrap).collect();
        assert_eq!(recs.len(), 5);
        cat.remove("docs@2").unwrap();
        assert_eq!(cat.resolve("docs").unwrap().version, 1);
        assert_eq!(
            publish(&cat, "docs", 1).version,
            3,
            "removed numbers are not reused"
        );
        cat.remove("docs").unwrap();
        assert!(cat.list().unwrap().is_empty());
    }

    #[test]
    fn unpublished_staging_is_invisible_and_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        {
            let mut st = cat.stage("docs").unwrap();
            let mut sink = st.sink(Kind::Document).unwrap();
            sink.push(&doc(1)).unwrap();
            sink.finish().unwrap();
            assert!(cat.list().unwrap().is_empty());
        }
        assert_eq!(fs::read_dir(dir.path().join("staging")).unwrap().count(), 0);
    }

    #[test]
    fn gc_removes_dead_builds_only() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let dead = dir.path().join("staging").join("docs.4000000000.1");
        fs::create_dir_all(dead.join("data")).unwrap();
        fs::write(dead.join("data/x"), b"abc").unwrap();
        let st = cat.stage("live").unwrap();
        let report = cat.gc(Duration::from_secs(3600)).unwrap();
        assert_eq!(report.removed, vec![dead]);
        assert_eq!(report.bytes, 3);
        assert_eq!(report.in_progress, vec![st.dir().to_path_buf()]);
    }
}
