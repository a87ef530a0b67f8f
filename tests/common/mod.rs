//! Helpers: a fresh catalog home per test and a way to run `njp` in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    #[track_caller]
    pub(crate) fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Env {
    pub(crate) fn new() -> Self {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub(crate) fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Writes a file under the test directory and returns its path.
    pub(crate) fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).expect("write fixture");
        p
    }

    pub(crate) fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_njp"));
        c.env("NJP_HOME", self.home())
            .env("NJP_NO_PROGRESS", "1")
            .env_remove("RUST_LOG")
            .env_remove("NJP_CONFIG")
            .env_remove("NJP_COMPRESSION")
            .current_dir(self.dir.path());
        c
    }

    pub(crate) fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Run {
        let out: Output = self.cmd().args(args).output().expect("run njp");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !run.stderr.contains("panicked"),
            "njp panicked:\n{}",
            run.stderr
        );
        run
    }

    /// Names of published dataset versions.
    pub(crate) fn datasets(&self) -> Vec<String> {
        let out = self.run(&["catalog", "list", "--all", "--json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("catalog list --json");
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}@{}", m["name"].as_str().unwrap(), m["version"]))
            .collect()
    }

    pub(crate) fn import(&self, path: &Path, kind: &str, name: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "import".to_string(),
            path.display().to_string(),
            "--kind".into(),
            kind.into(),
            "--name".into(),
            name.into(),
            "--license".into(),
            "CC-BY-4.0".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        self.run(&args)
    }
}
