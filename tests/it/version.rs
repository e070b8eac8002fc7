//! ulogd of other versions: a copy of the installed ulogd whose version
//! string is patched (same length, same binary otherwise) stands in for
//! another release. The plugin must register with any supported version
//! (2.0.5 .. 2.0.9) by retrying, and say clearly why when none is accepted.
//! Needs no root: `ulogd -i` and a ulogd that stops before opening netlink.

use std::path::{Path, PathBuf};
use std::process::Command;

use masqlog_lab::{process, tempdir::TempDir, ulogd};

use crate::harness::skip;

/// The installed ulogd's version (`ulogd -V`).
fn installed_version(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("-V").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("ulogd Version "))
        .map(|v| v.trim().to_string())
}

/// Writes a copy of `bin` that reports `to` instead of `from`, or says why
/// it cannot.
fn patched(bin: &Path, from: &str, to: &str, dir: &Path) -> Result<PathBuf, String> {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(bin).map_err(|e| format!("reading {}: {e}", bin.display()))?;
    let needle: Vec<u8> = [from.as_bytes(), b"\0"].concat();
    let at: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(i, w)| *w == needle.as_slice() && (*i == 0 || bytes[i - 1] == 0))
        .map(|(i, _)| i)
        .collect();
    if at.len() != 1 {
        return Err(format!(
            "the version string {from:?} occurs {} times in {}",
            at.len(),
            bin.display()
        ));
    }
    bytes[at[0]..at[0] + to.len()].copy_from_slice(to.as_bytes());
    let out = dir.join(format!("ulogd-{to}"));
    std::fs::write(&out, &bytes).map_err(|e| format!("writing {}: {e}", out.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Removes the test's directory when the test ends, also on failure.
struct Setup {
    dir: TempDir,
    bin: PathBuf,
    version: String,
    so: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

fn setup(test: &str) -> Option<Setup> {
    let bin = match process::find_tool("ulogd") {
        Ok(b) => b,
        Err(e) => {
            skip(test, &e);
            return None;
        }
    };
    let Some(version) = installed_version(&bin) else {
        skip(test, &"`ulogd -V` printed no version");
        return None;
    };
    if version.len() != 5 {
        skip(
            test,
            &format!("ulogd version {version:?} is not of the form X.Y.Z"),
        );
        return None;
    }
    let dir = TempDir::create(&format!("version-{}-{test}", std::process::id())).expect("temp dir");
    let so = ulogd::find_plugin().unwrap_or_else(|e| panic!("{e}"));
    // `-i` needs a path with a '/', and the plugin's file name does not
    // matter to ulogd.
    let so_copy = dir.path().join("ulogd_output_MASQLOG.so");
    std::fs::copy(&so, &so_copy).expect("copying the plugin");
    Some(Setup {
        dir,
        bin,
        version,
        so: so_copy,
    })
}

#[test]
fn another_supported_version_accepts_the_plugin_on_retry() {
    let test = "another_supported_version_accepts_the_plugin_on_retry";
    let Some(s) = setup(test) else { return };
    // A supported version other than the one the plugin was built for.
    let other = if s.version == "2.0.9" {
        "2.0.7"
    } else {
        "2.0.9"
    };
    let fake = match patched(&s.bin, &s.version, other, s.dir.path()) {
        Ok(f) => f,
        Err(e) => return skip(test, &e),
    };
    let v = installed_version(&fake);
    assert_eq!(v.as_deref(), Some(other), "the patched copy reports {v:?}");
    let out = Command::new(&fake)
        .arg("-i")
        .arg(&s.so)
        .output()
        .expect("running ulogd -i");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.trim() == "Name: MASQLOG"),
        "ulogd {other} did not take the plugin:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unsupported_version_gets_a_clear_message() {
    let test = "an_unsupported_version_gets_a_clear_message";
    let Some(s) = setup(test) else { return };
    let fake = match patched(&s.bin, &s.version, "2.0.4", s.dir.path()) {
        Ok(f) => f,
        Err(e) => return skip(test, &e),
    };
    // Under -i a refused plugin prints nothing: run it with a config whose
    // log file catches the message. The stack cannot start (no plugin), so
    // ulogd exits before it opens any socket.
    let log = s.dir.path().join("ulogd.log");
    let conf = s.dir.path().join("ulogd.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nlogfile=\"{}\"\nloglevel=1\nplugin=\"{}\"\nstack=m1:MASQLOG\n\n[m1]\nformat=text\n",
            log.display(),
            s.so.display()
        ),
    )
    .expect("writing the config");
    let out = Command::new(&fake)
        .arg("-c")
        .arg(&conf)
        .output()
        .expect("running ulogd");
    assert!(!out.status.success(), "ulogd 2.0.4 started with the plugin");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.contains("refused the plugin for every ulogd version it supports"))
        .unwrap_or_else(|| panic!("no clear refusal in ulogd's log:\n{text}"));
    for want in ["2.0.5", "2.0.9", "rebuild", "MASQLOG_ULOGD_VERSION"] {
        assert!(line.contains(want), "{want:?} missing from: {line}");
    }
    // and ulogd's own bare message follows, but ours came first
    assert!(
        !text.contains("MASQLOG[m1] started"),
        "the plugin started under ulogd 2.0.4:\n{text}"
    );
}
