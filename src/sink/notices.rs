//! Notices: the messages the writer thread leaves for ulogd's log. The
//! thread never calls ulogd; it queues a [`Notice`] in its [`Outbox`] and
//! wakes the main thread, which collects it with `Writer::take_notices`.

use std::any::Any;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};

use super::Waker;

/// Notices that may wait for the main thread; beyond that they are counted
/// and the next notice that fits carries the count.
pub(super) const NOTICE_QUEUE: usize = 256;
/// While a condition lasts (the destination down, the spool refusing, the
/// backlog spilling): at most one reminder per this interval.
pub(super) const REMINDER_INTERVAL: Duration = Duration::from_secs(60);

/// How loud a notice is, in ulogd's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Notice,
    Error,
}

/// A message from the writer thread for ulogd's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub level: Level,
    pub message: String,
}

/// The notice queue towards the main thread.
pub(super) struct Outbox {
    tx: Sender<Notice>,
    waker: Arc<dyn Waker>,
    /// Notices that did not fit since the last one that did.
    suppressed: u64,
}

impl Outbox {
    pub(super) fn new(tx: Sender<Notice>, waker: Arc<dyn Waker>) -> Self {
        Outbox {
            tx,
            waker,
            suppressed: 0,
        }
    }

    /// Queues a notice and wakes the main thread; never blocks.
    pub(super) fn push(&mut self, level: Level, mut message: String) {
        if self.suppressed > 0 {
            let _ = write!(message, " ({} notices suppressed)", self.suppressed);
        }
        match self.tx.try_send(Notice { level, message }) {
            Ok(()) => self.suppressed = 0,
            Err(TrySendError::Full(_)) => self.suppressed += 1,
            // The handle is gone: nobody left to tell.
            Err(TrySendError::Disconnected(_)) => return,
        }
        self.waker.wake();
    }
}

/// A record as notices name it: by its conntrack id.
pub(super) fn describe(id: Option<u32>) -> String {
    match id {
        Some(id) => format!("(conntrack id {id})"),
        None => "(no conntrack id)".to_string(),
    }
}

/// The message a panic was raised with.
pub(super) fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use std::panic::catch_unwind;

    use super::*;
    use crate::sink::testutil::TestWaker;

    #[test]
    fn full_notice_queue_counts_and_the_next_notice_says_so() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let waker = Arc::new(TestWaker::default());
        let mut outbox = Outbox::new(tx, waker.clone());
        for i in 0..5 {
            outbox.push(Level::Error, format!("n{i}"));
        }
        let got: Vec<Notice> = rx.try_iter().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].message, "n1");
        outbox.push(Level::Notice, "later".into());
        let got: Vec<Notice> = rx.try_iter().collect();
        assert_eq!(got[0].message, "later (3 notices suppressed)");
        outbox.push(Level::Notice, "clean".into());
        assert_eq!(rx.try_recv().unwrap().message, "clean");
        assert!(waker.count() >= 3);
    }

    #[test]
    fn panic_messages_are_extracted() {
        let p = catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(panic_message(&*p), "boom 7");
        let p = catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(&*p), "static");
    }
}
