//! Bounded polling: wait for a condition with a time limit, never a fixed
//! sleep.

use std::thread;
use std::time::{Duration, Instant};

use crate::LabError;

/// The longest pause between two polls.
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// Calls `check` until it returns `Some`, at most `timeout` long (once at
/// least), pausing 5 ms at first and up to 200 ms later. `what` names the
/// awaited thing in the timeout error.
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>, LabError>,
) -> Result<T, LabError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        let spent = start.elapsed();
        if spent >= timeout {
            return Err(LabError::Timeout {
                what: what.to_string(),
                secs: timeout.as_secs_f64(),
            });
        }
        thread::sleep(pause.min(timeout - spent));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_value() {
        let mut n = 0;
        let v = poll("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            Ok((n >= 3).then_some(n))
        })
        .unwrap();
        assert_eq!(v, 3);
    }

    #[test]
    fn times_out_with_the_name_of_the_wait() {
        let e = poll::<()>("nothing", Duration::from_millis(20), || Ok(None)).unwrap_err();
        assert!(e.to_string().contains("waiting for nothing"), "{e}");
    }
}
