//! The `Authorization` header: HTTP Basic (RFC 7617) against htpasswd users,
//! and the Bearer scheme (RFC 6750) in front of introspection, as the filter
//! reads it (bytes; not UTF-8 is malformed). Inputs: raw header bytes, or a
//! scheme spelling with a base64 credential built from a user and password.
//!
//! Checks: no panic; Basic accepts exactly the configured user/password
//! pairs; a bearer token is only ever sent to introspection when it is an
//! RFC 6750 b64token of at most 32 KiB, and nothing is accepted without an
//! introspection answer.
#![no_main]

use std::cell::RefCell;

use arbitrary::{Arbitrary, Unstructured};
use canary_gate::auth::oauth2::{OAuth2State, Step, MAX_TOKEN_BYTES};
use canary_gate::auth::{AuthError, Authenticator, BasicAuth, CredentialCache};
use canary_gate::config::{parse, Plan};
use canary_gate_fuzz::b64;
use libfuzzer_sys::fuzz_target;

/// alice / "secret" ({SHA}), bob / "U*U*" (bcrypt cost 5, an OpenBSD test vector).
const USERS: &str = r#"["alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
    "bob:$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK"]"#;

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Basic {
        scheme: u8,
        spaces: u8,
        user: String,
        password: Vec<u8>,
        padding: bool,
        suffix: Vec<u8>,
    },
    Bearer {
        scheme: u8,
        token: Vec<u8>,
    },
}

thread_local! {
    static PLANS: (Plan, Plan) = (
        parse(format!(r#"{{"primary":"v1","auth":{{"mode":"basic","users":{USERS}}}}}"#).as_bytes())
            .unwrap_or_else(|e| panic!("basic plan: {e}")),
        parse(br#"{"primary":"v1","auth":{"mode":"oauth2","introspection":{"cluster":"idp","path":"/i","client_id":"g","client_secret":"s"}}}"#)
            .unwrap_or_else(|e| panic!("oauth2 plan: {e}")),
    );
    // Kept across inputs, as in a VM: the decoy budget runs out and stays out
    // (the time is fixed), so unknown users cost no bcrypt after the first 128.
    static CACHE: RefCell<CredentialCache> = RefCell::new(CredentialCache::new(16, 1 << 16, 7));
}

fn scheme(n: u8, name: &str) -> String {
    match n % 6 {
        0 => name.to_string(),
        1 => name.to_ascii_uppercase(),
        2 => name.to_ascii_lowercase(),
        3 => format!(" {name}"),
        4 => format!("{name}x"),
        _ => String::new(),
    }
}

fn header(input: &Input) -> Vec<u8> {
    match input {
        Input::Raw(bytes) => bytes.clone(),
        Input::Basic {
            scheme: s,
            spaces,
            user,
            password,
            padding,
            suffix,
        } => {
            let mut credential = user.as_bytes().to_vec();
            credential.push(b':');
            credential.extend_from_slice(password);
            let mut encoded = b64(&credential);
            if !padding {
                encoded = encoded.trim_end_matches('=').to_string();
            }
            let mut v = scheme(*s, "Basic").into_bytes();
            v.extend(std::iter::repeat_n(b' ', usize::from(spaces % 4)));
            v.extend_from_slice(encoded.as_bytes());
            v.extend_from_slice(suffix);
            v
        }
        Input::Bearer { scheme: s, token } => {
            let mut v = scheme(*s, "Bearer").into_bytes();
            v.push(b' ');
            v.extend_from_slice(token);
            v
        }
    }
}

fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && token.len() <= MAX_TOKEN_BYTES
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let value = header(&input);
    // As the filter does: a credential that is not UTF-8 is malformed.
    let Ok(text) = std::str::from_utf8(&value) else {
        return;
    };
    PLANS.with(|(basic, oauth2)| {
        let (Authenticator::Basic(b), Authenticator::OAuth2(o)) =
            (&basic.gateways[0].auth, &oauth2.gateways[0].auth)
        else {
            panic!("unexpected plans");
        };
        check_basic(b, text, &input);
        let mut state = OAuth2State::new(4, 4, 7);
        match o.authenticate(Some(text), &mut state, 1_700_000_000) {
            Step::Introspect { call, .. } => {
                let token = text
                    .trim()
                    .split_once(' ')
                    .map(|(_, t)| t.trim_start_matches(' '));
                let token = token.unwrap_or_default();
                assert!(is_b64token(token), "introspected {token:?}");
                assert!(call.body.is_some());
            }
            Step::Reject(_) => {}
            other => panic!("without an answer nothing passes: {other:?}"),
        }
    });
});

fn check_basic(b: &BasicAuth, text: &str, input: &Input) {
    let result = CACHE.with(|c| b.verify(Some(text), &mut c.borrow_mut(), 0));
    if let Ok(user) = result {
        // Only the exact credentials, sent in the Basic scheme.
        let (_, rest) = text.trim_start().split_once(' ').unwrap_or_default();
        let decoded = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            rest.trim().trim_end_matches('='),
        );
        let expected: &[u8] = match user {
            "alice" => b"alice:secret",
            "bob" => b"bob:U*U*",
            other => panic!("accepted unknown user {other:?}"),
        };
        assert_eq!(decoded.as_deref().ok(), Some(expected), "{input:?}");
    }
    if text.trim().is_empty() {
        assert_eq!(result, Err(AuthError::Missing));
    }
}
