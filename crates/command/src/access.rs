//! What to say when masqlog may not read a file (EACCES): the error, and
//! how to run so that it can.

use std::io;
use std::path::Path;

/// `e` as text; for a permission error, with how to read `path`: as root,
/// or as a member of group `adm` (which can read /var/log on Debian).
pub fn why(path: &Path, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::PermissionDenied {
        format!(
            "{e}: run masqlog as root (sudo) to read {}, or as a member of group adm, \
             which can read /var/log on Debian",
            path.display()
        )
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permission_error_says_how_to_read_the_file() {
        let e = io::Error::from_raw_os_error(libc::EACCES);
        let why = why(Path::new("/var/log/syslog"), &e);
        assert!(why.starts_with("Permission denied"), "{why}");
        assert!(
            why.contains("as root (sudo) to read /var/log/syslog, or as a member of group adm"),
            "{why}"
        );
    }

    #[test]
    fn other_errors_are_left_as_they_are() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(why(Path::new("/nope"), &e), e.to_string());
    }
}
