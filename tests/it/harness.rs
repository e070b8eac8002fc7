//! Starting sessions, skipping where the lab cannot run, and showing the
//! lab's logs when a test fails.

use std::ops::{Deref, DerefMut};

use masqlog_core::record::Event;
use masqlog_lab::session::LINE_WAIT;
use masqlog_lab::{Family, FlowProto, FlowResult, Lab, Logged, Received, Session, SessionOptions};

/// Says why a test does not run.
pub fn skip(test: &str, why: &dyn std::fmt::Display) {
    eprintln!("SKIP {test}: {why}");
}

/// Whether the lab can run here; prints the reason when not.
pub fn lab_supported(test: &str) -> bool {
    match masqlog_lab::preflight() {
        Ok(()) => true,
        Err(e) => {
            skip(test, &e);
            false
        }
    }
}

/// A session that prints the lab's logs if the test panics.
pub struct Env(pub Session);

impl Deref for Env {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.0
    }
}

impl DerefMut for Env {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.0
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- lab logs ----\n{}", self.0.lab.dump_logs(40));
        }
    }
}

/// A lab that prints its logs if the test panics.
pub struct LabEnv(pub Lab);

impl Deref for LabEnv {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.0
    }
}

impl Drop for LabEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- lab logs ----\n{}", self.0.dump_logs(40));
        }
    }
}

/// Starts a session, or `None` (after saying why) where the lab cannot
/// run. Any other failure fails the test.
pub fn session(test: &str, opts: &SessionOptions) -> Option<Env> {
    if !lab_supported(test) {
        return None;
    }
    match Session::start(opts) {
        Ok(s) => Some(Env(s)),
        Err(e) if e.is_unsupported() => {
            skip(test, &e);
            None
        }
        Err(e) => panic!("{test}: cannot start the lab: {e}"),
    }
}

/// Builds a bare lab, or `None` where it cannot run.
pub fn lab(test: &str) -> Option<LabEnv> {
    if !lab_supported(test) {
        return None;
    }
    match Lab::new() {
        Ok(l) => Some(LabEnv(l)),
        Err(e) if e.is_unsupported() => {
            skip(test, &e);
            None
        }
        Err(e) => panic!("{test}: cannot build the lab: {e}"),
    }
}

/// Unwraps a lab result with the error's full text.
pub fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

impl Env {
    /// One flow of `user`, waited for until its DESTROY event and its
    /// start and end lines are in the receiver's file.
    pub fn logged_flow(
        &mut self,
        user: &str,
        proto: FlowProto,
        family: Family,
        bytes: usize,
    ) -> (FlowResult, Received) {
        let r = ok(self.flow(user, proto, family, bytes), "the flow");
        let spec = std::slice::from_ref(&r.spec);
        ok(self.wait_destroyed(spec), "its DESTROY event");
        let received = ok(self.wait_logged(spec, LINE_WAIT), "its masqlog lines");
        (r, received)
    }
}

/// The line of `event` of the flow `r`.
pub fn line_of(received: &Received, r: &FlowResult, event: Event) -> Logged {
    received
        .of_flow(&r.spec)
        .into_iter()
        .find(|l| l.parsed.record.event == event)
        .unwrap_or_else(|| panic!("no {} line of {}", event.name(), r.spec.label()))
        .clone()
}
