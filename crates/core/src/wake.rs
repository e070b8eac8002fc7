//! Waking ulogd's main thread from a worker thread: ulogd is single-threaded,
//! so workers never call into it; they queue what they have and wake it.

/// Something that wakes ulogd's main thread (the plugin's is a byte into a
/// socket registered with `ulogd_register_fd`).
pub trait Waker: Send + Sync + 'static {
    fn wake(&self);
}
