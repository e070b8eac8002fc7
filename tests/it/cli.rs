//! Running the built `masqlog` binary: one run's exit code and output, for
//! the tests of its command line.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::LazyLock;

/// The `masqlog` binary of this build: `$MASQLOG_BIN`, else `masqlog` in
/// `target/<profile>/`, one directory above this test binary (it belongs
/// to another crate of the workspace, so `cargo build` makes it; tests/run
/// builds before it tests).
pub static BIN: LazyLock<String> = LazyLock::new(|| {
    if let Some(p) = std::env::var_os("MASQLOG_BIN") {
        return p.to_string_lossy().into_owned();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .expect("the test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("masqlog");
    assert!(
        bin.is_file(),
        "{} does not exist: build it first (cargo build{}), or set MASQLOG_BIN",
        bin.display(),
        if cfg!(debug_assertions) {
            ""
        } else {
            " --release"
        }
    );
    bin.to_string_lossy().into_owned()
});

/// One run of the binary.
pub struct Ran {
    pub cmd: String,
    pub code: Option<i32>,
    pub out: String,
    pub err: String,
}

impl Ran {
    /// Everything, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "$ {}\n(exit {:?})\n--- stdout ---\n{}--- stderr ---\n{}",
            self.cmd, self.code, self.out, self.err
        )
    }

    pub fn first_line(&self) -> &str {
        self.out.lines().next().unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{}", self.all()))
    }

    /// Exit 2, nothing on stdout, and stderr names the problem.
    pub fn refused(&self, needle: &str) {
        assert_eq!(self.code, Some(2), "{}", self.all());
        assert!(self.out.is_empty(), "stdout is not empty:\n{}", self.all());
        assert!(
            self.err.contains(needle),
            "stderr does not say {needle:?}:\n{}",
            self.all()
        );
    }
}

/// Whether `MASQLOG_PRINT` asks for every run to be shown.
pub fn printing() -> bool {
    std::env::var_os("MASQLOG_PRINT").is_some_and(|v| !v.is_empty() && v != "0")
}

/// `'...'` where the shell needs it.
fn quoted(a: &str) -> String {
    let plain = !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./-_[]".contains(&b));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// Runs `masqlog ARGS...` with `stdin`, or /dev/null (not a terminal: a
/// lookup without LOG reads it, empty).
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Ran {
    let mut child = Command::new(&*BIN)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", *BIN));
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        // The lookup may stop reading early: a broken pipe is no failure.
        let _ = pipe.write_all(bytes);
    }
    let out = child.wait_with_output().expect("waiting for masqlog");
    let ran = Ran {
        cmd: std::iter::once("masqlog")
            .chain(args.iter().copied())
            .map(quoted)
            .collect::<Vec<_>>()
            .join(" "),
        code: out.status.code(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if printing() {
        eprintln!("{}\n", ran.all());
    }
    ran
}

/// `run` with stdin from /dev/null.
pub fn masqlog(args: &[&str]) -> Ran {
    run(args, None)
}
