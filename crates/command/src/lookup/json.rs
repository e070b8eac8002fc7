//! The flat objects of a JSON-lines report file (`lookup --reports`), read
//! with the core's strict JSON reader. The `--json` writer is
//! [`crate::json`].

use masqlog_core::format::json_reader::{JsonValue, Reader};

/// A scalar of a flat JSON object: strings as their text, numbers and
/// booleans as written, `null` as `None`.
pub type Flat = Vec<(String, Option<String>)>;

/// Reads a flat JSON object (`{"key": scalar, ...}`), nothing after it.
pub fn parse_flat(s: &str) -> Result<Flat, String> {
    let mut r = Reader::new(s, 0);
    let members = r.object().map_err(|e| e.to_string())?;
    r.end().map_err(|e| e.to_string())?;
    members
        .into_iter()
        .map(|m| {
            let value = match m.value {
                JsonValue::Str(s) => Some(s),
                JsonValue::Num(n) => Some(n.to_string()),
                JsonValue::Other("null") => None,
                JsonValue::Other(w @ ("true" | "false")) => Some(w.to_string()),
                JsonValue::Obj(_) | JsonValue::Other(_) => {
                    return Err(format!(
                        "the value of {:?} is an object or an array: a report's fields are strings or numbers",
                        m.key
                    ));
                }
            };
            Ok((m.key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_objects() {
        let f = parse_flat(r#" {"public":"192.0.2.1:53500", "at":"2026-11-21 13:37:42 CET","remote":null,"n":5,"u":"\u00e9\ud83d\ude00\n"} "#).unwrap();
        assert_eq!(f[0], ("public".into(), Some("192.0.2.1:53500".into())));
        assert_eq!(f[2], ("remote".into(), None));
        assert_eq!(f[3], ("n".into(), Some("5".into())));
        assert_eq!(f[4].1.as_deref(), Some("é😀\n"));
        assert_eq!(parse_flat("{}").unwrap(), vec![]);
        for bad in [
            "",
            "{",
            "{\"a\":}",
            "{\"a\":[1]}",
            "{\"a\":1} x",
            "{\"a\" 1}",
            "[1]",
        ] {
            assert!(parse_flat(bad).is_err(), "{bad}");
        }
    }
}
