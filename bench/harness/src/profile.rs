//! Profiles of one row. `--profile ROW`: a short run with ulogd under
//! valgrind's callgrind (this machine's perf has no hardware counters), then
//! callgrind_annotate's inclusive and exclusive views into files.
//! `--perf ROW`: the row's steady phase at full speed with `perf record -e
//! cpu-clock -g` attached to ulogd (kernel time included), then `perf
//! report` by thread and symbol.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use masqlog_lab::process;

use crate::rows::Row;
use crate::runner::{Env, RowResult};

/// Runs `row` under callgrind; writes `<out_dir>/callgrind.<key>.out` and
/// its annotations `<...>.self.txt`, `<...>.inclusive.txt`.
pub fn run(env: &mut Env, row: &Row, out_dir: &Path) -> Result<(RowResult, Vec<String>)> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let key: String = row
        .key()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let out = out_dir.join(format!("callgrind.{key}.out"));
    let _ = std::fs::remove_file(&out);
    env.ulogd_prefix = vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}", out.display()),
        // ulogd's plugins are dlopen()ed and dlclose()d at exit: keep
        // their symbols
        "--keep-debuginfo=yes".into(),
    ];
    env.ready_limit = Duration::from_secs(180);
    let result = env.run_row(row, false)?;
    env.ulogd_prefix.clear();
    let mut files = Vec::new();
    for (suffix, extra) in [("self", None), ("inclusive", Some("--inclusive=yes"))] {
        let path = out_dir.join(format!("callgrind.{key}.{suffix}.txt"));
        let o = out.to_string_lossy().into_owned();
        let mut argv = vec!["callgrind_annotate", "--threshold=99"];
        if let Some(e) = extra {
            argv.push(e);
        }
        argv.push(&o);
        let res = process::run_with(&argv, None, None, Duration::from_secs(120))?;
        std::fs::write(&path, &res.stdout)
            .with_context(|| format!("writing {}", path.display()))?;
        files.push(path.display().to_string());
    }
    files.insert(0, out.display().to_string());
    Ok((result, files))
}

/// Runs `row`'s steady phase with `perf record` attached to ulogd; writes
/// `<out_dir>/perf.<key>.data` and `perf.<key>.txt` (perf report, no
/// children, by thread and symbol, with call chains).
pub fn perf(env: &mut Env, row: &Row, out_dir: &Path) -> Result<(RowResult, Vec<String>)> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let key: String = row
        .key()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let data = out_dir.join(format!("perf.{key}.data"));
    let _ = std::fs::remove_file(&data);
    env.perf_out = Some(data.clone());
    let result = env.run_row(row, false);
    env.perf_out = None;
    let result = result?;
    let d = data.to_string_lossy().into_owned();
    let res = process::run_with(
        &[
            "perf",
            "report",
            "-i",
            &d,
            "--stdio",
            "--no-children",
            "--sort",
            "comm,dso,sym",
            "--percent-limit",
            "0.5",
        ],
        None,
        None,
        Duration::from_secs(300),
    )?;
    let txt = out_dir.join(format!("perf.{key}.txt"));
    std::fs::write(&txt, &res.stdout).with_context(|| format!("writing {}", txt.display()))?;
    Ok((result, vec![d, txt.display().to_string()]))
}
