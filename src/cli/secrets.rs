//! `key-digest` and `htpasswd`: secrets read on stdin (without echo at a
//! terminal), one trailing newline removed, never printed back.

use std::io::{IsTerminal, Read};

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{print_json, Failure, Outcome, Output};

/// Removes one trailing `\n` or `\r\n`.
pub fn strip_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    bytes
}

/// The secret on stdin; at a terminal, asked for with `prompt` and read
/// without echo.
fn read_secret(prompt: &str) -> Result<Vec<u8>, Failure> {
    let stdin = std::io::stdin();
    let bytes = if stdin.is_terminal() {
        rpassword::prompt_password(prompt)
            .map(String::into_bytes)
            .map_err(|e| Failure::usage(format!("reading from the terminal: {e}")))?
    } else {
        let mut buf = Vec::new();
        stdin
            .lock()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::usage(format!("reading stdin: {e}")))?;
        buf
    };
    Ok(strip_newline(bytes))
}

/// Why a key cannot be an access key, if it cannot.
pub fn key_problem(key: &[u8]) -> Option<&'static str> {
    let Ok(text) = std::str::from_utf8(key) else {
        return Some("the key is not UTF-8; the filter refuses such keys as malformed");
    };
    if text.is_empty() {
        return Some("the key on stdin is empty");
    }
    if text.trim() != text {
        return Some(
            "the key starts or ends with whitespace, which HTTP removes from header values",
        );
    }
    None
}

pub fn key_digest(consumer: Option<&str>, output: Output) -> Outcome {
    let key = read_secret("Key: ")?;
    if let Some(problem) = key_problem(&key) {
        return Err(Failure::usage(problem));
    }
    let digest = hex::encode(Sha256::digest(&key));
    match (output, consumer) {
        (Output::Json, c) => print_json(&json!({"consumer": c, "sha256": digest})),
        (Output::Table, Some(c)) => println!("{}", json!({"consumer": c, "sha256": digest})),
        (Output::Table, None) => println!("{digest}"),
    }
    Ok(0)
}

/// bcrypt reads at most 72 bytes of a password.
const BCRYPT_MAX: usize = 72;

fn check_user_and_cost(user: &str, cost: u32) -> Result<(), Failure> {
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        return Err(Failure::usage(format!(
            "user {user:?}: must be non-empty, without ':' or control characters"
        )));
    }
    if !(4..=12).contains(&cost) {
        return Err(Failure::usage(format!(
            "--cost {cost}: the filter accepts bcrypt costs 4 to 12"
        )));
    }
    Ok(())
}

/// An htpasswd line for `user` with a bcrypt hash of `password` (`$2y$`),
/// with `salt`.
pub fn htpasswd_line(
    user: &str,
    password: &[u8],
    cost: u32,
    salt: [u8; 16],
) -> Result<String, Failure> {
    check_user_and_cost(user, cost)?;
    if password.is_empty() {
        return Err(Failure::usage("the password on stdin is empty"));
    }
    if password.len() > BCRYPT_MAX {
        return Err(Failure::usage(format!(
            "the password is {} bytes; bcrypt reads only the first {BCRYPT_MAX}",
            password.len()
        )));
    }
    let parts = bcrypt::hash_with_salt(password, cost, salt)
        .map_err(|e| Failure::usage(format!("bcrypt: {e}")))?;
    let line = format!("{user}:{}", parts.format_for_version(bcrypt::Version::TwoY));
    // The filter must take it: the same parser as at configure time.
    let probe = json!({"primary": "v1", "auth": {"mode": "basic", "users": [line]}});
    crate::config::parse(probe.to_string().as_bytes())
        .map_err(|e| Failure::usage(format!("the filter would refuse the line: {e}")))?;
    Ok(line)
}

pub fn htpasswd(user: &str, cost: u32, output: Output) -> Outcome {
    // Check the user and cost before asking for a password.
    check_user_and_cost(user, cost)?;
    let password = read_secret("Password: ")?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Failure::usage(format!("no random salt: {e}")))?;
    let line = htpasswd_line(user, &password, cost, salt)?;
    match output {
        Output::Json => print_json(&json!({"user": user, "line": line})),
        Output::Table => println!("{line}"),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_removed() {
        assert_eq!(strip_newline(b"k\n".to_vec()), b"k");
        assert_eq!(strip_newline(b"k\r\n".to_vec()), b"k");
        assert_eq!(strip_newline(b"k\n\n".to_vec()), b"k\n");
        assert_eq!(strip_newline(b"k\r".to_vec()), b"k\r");
        assert_eq!(strip_newline(b"k".to_vec()), b"k");
    }

    #[test]
    fn keys_the_filter_cannot_see_are_refused() {
        assert_eq!(key_problem(b"alice-key"), None);
        assert!(key_problem(b"").is_some());
        assert!(key_problem(b" k").is_some());
        assert!(key_problem(b"k\xff").is_some());
    }

    #[test]
    fn htpasswd_lines_verify_and_the_filter_takes_them() {
        let line = htpasswd_line("alice", b"s3cret:with:colons", 4, [7; 16]).unwrap();
        let (user, hash) = line.split_once(':').unwrap();
        assert_eq!(user, "alice");
        assert!(hash.starts_with("$2y$04$"), "{hash}");
        assert!(bcrypt::verify(b"s3cret:with:colons", hash).unwrap());
        assert!(!line.contains("s3cret"));
        assert!(htpasswd_line("a:b", b"p", 4, [0; 16]).is_err());
        assert!(htpasswd_line("a", b"p", 13, [0; 16]).is_err());
        assert!(htpasswd_line("a", &[b'x'; 73], 4, [0; 16]).is_err());
    }
}
