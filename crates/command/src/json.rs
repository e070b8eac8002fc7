//! A small JSON value for the `--json` output of `lookup` and
//! `check-config`, written with the line formats' own escaping, so that
//! untrusted bytes such as IDENT user names stay reversible.

use masqlog_core::format::escape;

/// A JSON value to write.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(String),
    /// Bytes that may not be UTF-8: see `escape::write_json_bytes`.
    Bytes(Vec<u8>),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn obj<const N: usize>(members: [(&str, Json); N]) -> Json {
        Json::Obj(
            members
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    pub fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Json) -> Json {
        v.map_or(Json::Null, f)
    }

    /// Appends the value, on one line.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Json::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Json::Num(x) if x.is_finite() => out.extend_from_slice(format!("{x}").as_bytes()),
            Json::Num(_) => out.extend_from_slice(b"null"),
            Json::Str(s) => escape::write_json_str(out, s),
            Json::Bytes(b) => escape::write_json_bytes(out, b),
            Json::Arr(v) => {
                out.push(b'[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    x.write(out);
                }
                out.push(b']');
            }
            Json::Obj(m) => {
                out.push(b'{');
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    escape::write_json_str(out, k);
                    out.push(b':');
                    x.write(out);
                }
                out.push(b'}');
            }
        }
    }

    pub fn to_line(&self) -> String {
        let mut out = Vec::new();
        self.write(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_serde_json_reads() {
        let v = Json::obj([
            ("a", Json::Int(-5)),
            ("b", Json::str("x\"y\n")),
            ("c", Json::Bytes(b"al\xffice".to_vec())),
            (
                "d",
                Json::Arr(vec![Json::Null, Json::Bool(true), Json::Num(1.5)]),
            ),
        ]);
        let line = v.to_line();
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["a"], -5);
        assert_eq!(back["b"], "x\"y\n");
        assert_eq!(back["c"], "al\\xffice");
        assert_eq!(back["d"][2], 1.5);
    }
}
