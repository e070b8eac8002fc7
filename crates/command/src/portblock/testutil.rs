//! Test helpers: temporary directories (`tempfile`), named after their test.

/// A fresh directory under the system's temporary directory
/// (`masqlog-portblock-TAG-XXXXXX`), removed with everything in it when
/// dropped.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("masqlog-portblock-{tag}-"))
        .tempdir()
        .expect("create temp dir")
}
