//! Fuzzes the RFC 1413 reply parser: no input may panic, and what it accepts
//! must keep the parser's promises. Each input is parsed twice: as a reply to
//! the fixed query `6193, 23` (so that mutations reach the deep branches), and
//! with the ports the reply must echo taken from its first four bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masqlog_core::ident::reply::{IdentReply, MAX_TOKEN, parse_reply};

fn check(line: &[u8], client: u16, remote: u16) {
    let is_token_byte = |b: &u8| b.is_ascii_graphic() && *b != b':';
    match parse_reply(line, client, remote) {
        Ok(IdentReply::User {
            opsys,
            charset,
            user,
        }) => {
            assert!(!opsys.is_empty() && opsys.len() <= MAX_TOKEN);
            assert!(opsys.iter().all(|b| is_token_byte(b) && *b != b','));
            if let Some(c) = charset {
                assert!(!c.is_empty() && c.len() <= MAX_TOKEN);
                assert!(c.iter().all(|b| is_token_byte(b) && *b != b','));
            }
            assert!(!user.is_empty());
            assert!(!user.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n'));
            assert!(user[0] != b' ' && user[0] != b'\t');
        }
        Ok(IdentReply::Error(e)) => {
            assert!(!e.is_empty() && e.len() <= MAX_TOKEN);
            assert!(e.iter().all(is_token_byte));
        }
        Ok(_) => {}
        Err(e) => {
            let m = e.to_string();
            assert!(m.bytes().all(|b| b.is_ascii_graphic() || b == b' '), "{m}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, 6193, 23);
    if let Some((p, line)) = data.split_first_chunk::<4>() {
        check(
            line,
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        );
    }
});
