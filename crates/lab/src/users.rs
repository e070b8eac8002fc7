//! The local users that own the lab's client flows (alice, bob).

use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use crate::{LabError, process};

/// The users `masqlog lab` makes flows as.
pub const LAB_USERS: &[&str] = &["alice", "bob"];

static USERADD: Mutex<()> = Mutex::new(());

/// Whether `/etc/passwd` has `name`.
pub fn user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .map(|p| p.lines().any(|l| l.split(':').next() == Some(name)))
        .unwrap_or(false)
}

/// Creates a local user without home directory and with no login shell
/// (`su -s /bin/sh` still runs commands as it), unless it exists. Users are
/// left in place afterwards.
pub fn ensure_user(name: &str) -> Result<(), LabError> {
    let _one_at_a_time = USERADD.lock().unwrap_or_else(|p| p.into_inner());
    let mut last = None;
    // Another process (a parallel test binary) may hold /etc/passwd's lock.
    for _ in 0..20 {
        if user_exists(name) {
            return Ok(());
        }
        match process::run(&["useradd", "-M", "-s", "/usr/sbin/nologin", name], None) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        thread::sleep(Duration::from_millis(100));
    }
    if user_exists(name) {
        return Ok(());
    }
    Err(last.expect("at least one attempt"))
}
