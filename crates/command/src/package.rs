//! The Debian package's defaults, in one place: where the records go, and
//! the files `masqlog enable` writes beside ulogd's config. The package's
//! `/etc/ulogd-masqlog.conf`, its rsyslog drop-in and `masqlog enable` all
//! take the destination from here.

/// The socket the package's rsyslog drop-in (`/etc/rsyslog.d/30-masqlog.conf`)
/// listens on: an input of its own, without rate limiting, whose lines go to
/// [`LOG_FILE`] only (not through journald, not to /var/log/syslog).
pub const SYSLOG_SOCKET: &str = "/run/masqlog/log";

/// The `destination=` of the package's config and of `masqlog enable`.
pub const DESTINATION: &str = "unix:/run/masqlog/log";

/// The `store_dir=` of the package's config and of `masqlog enable`: the
/// plugin's own indexed evidence store, which `masqlog lookup --store`
/// answers from in milliseconds. The package's postinst makes it for the
/// user ulogd runs as (ulog), mode 0750.
pub const STORE_DIR: &str = "/var/lib/masqlog/store";

/// Where the package's rsyslog drop-in writes the records (rotated by
/// `/etc/logrotate.d/masqlog`).
pub const LOG_FILE: &str = "/var/log/masqlog.log";

/// The sysctl file `masqlog enable` writes.
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/90-masqlog.conf";

/// The modules-load.d file `masqlog enable` writes: nf_conntrack is loaded
/// at boot before systemd-sysctl runs, so the conntrack sysctls exist when
/// [`SYSCTL_FILE`] is applied.
pub const MODULES_FILE: &str = "/etc/modules-load.d/masqlog.conf";

/// ulogd's config on Debian.
pub const ULOGD_CONF: &str = "/etc/ulogd.conf";

/// Debian's ulogd unit.
pub const ULOGD_UNIT: &str = "ulogd2.service";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_is_the_drop_ins_socket() {
        assert_eq!(DESTINATION, format!("unix:{SYSLOG_SOCKET}"));
        let dropin = include_str!("../../../debian-pkg/rsyslog-masqlog.conf");
        assert!(dropin.contains(&format!("Socket=\"{SYSLOG_SOCKET}\"")));
        assert!(dropin.contains(&format!("file=\"{LOG_FILE}\"")));
        let logrotate = include_str!("../../../debian-pkg/logrotate-masqlog");
        assert!(logrotate.lines().any(|l| l == LOG_FILE));
        // The rotated files are indexed once logrotate is done with them.
        let last = logrotate
            .split("\tlastaction\n")
            .nth(1)
            .and_then(|s| s.split("endscript").next())
            .expect("a lastaction script");
        assert!(
            last.contains(&format!("/usr/bin/masqlog index {LOG_FILE}.[0-9]*")),
            "{last}"
        );
    }
}
