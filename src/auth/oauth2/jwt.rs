//! JWT (JWS compact serialization) verification with jwt-simple.
//!
//! The header is read only to pick candidate keys (`alg` and `kid`); each
//! candidate verifies the token for its own single algorithm, so the token
//! cannot choose how it is verified. Claims checked: `iss`, `aud` (any of the
//! configured audiences), `exp` (required), `nbf` and `iat` (not in the
//! future), all with the configured clock skew. The current time is a
//! parameter: nothing here reads a clock.

use std::collections::HashSet;

use jwt_simple::prelude::{
    Duration, ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, EdDSAPublicKeyLike, JWTClaims,
    MACLike, RSAPublicKeyLike, Token, UnixTimeStamp, VerificationOptions,
};
use jwt_simple::JWTError;
use serde_json::{Map, Value};

use super::jwks::{Alg, KeySet, Verifier};
use super::TokenError;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 32 * 1024;

/// Claims the filter reads after verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub subject: Option<String>,
    pub expires_at: u64,
    /// Every other claim (`scope`, `scp`, custom identity claims).
    pub extra: Map<String, Value>,
}

/// What a token must satisfy, prepared at configure time.
#[derive(Debug, Clone)]
pub struct Rules {
    options: VerificationOptions,
}

impl Rules {
    pub fn new(issuer: &str, audiences: &[String], clock_skew_seconds: u64) -> Self {
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from([issuer.to_string()])),
            allowed_audiences: if audiences.is_empty() {
                None
            } else {
                Some(audiences.iter().cloned().collect())
            },
            time_tolerance: Some(Duration::from_secs(clock_skew_seconds)),
            max_token_length: Some(MAX_TOKEN_BYTES),
            ..VerificationOptions::default()
        };
        Self { options }
    }
}

/// True when `token` has the shape of a JWS compact serialization (three
/// base64url segments). Opaque tokens go to introspection instead.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(h), Some(p), Some(_), None) if !h.is_empty() && !p.is_empty()
    )
}

/// The key sets to try, in order (configured keys, then the fetched ones).
pub struct Keys<'a> {
    pub sets: [Option<&'a KeySet>; 2],
    /// The shared secret for HS256, when configured.
    pub hs256: Option<&'a Verifier>,
}

/// Verifies `token` and returns its claims. `Err(None)` means no key matched
/// the token's `alg`/`kid` (the caller decides whether to wait for keys).
pub fn verify(
    token: &str,
    keys: &Keys<'_>,
    rules: &Rules,
    now: u64,
) -> Result<Claims, Option<TokenError>> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Some(TokenError::Malformed));
    }
    let meta = Token::decode_metadata(token).map_err(|_| Some(TokenError::Malformed))?;
    let alg = match Alg::from_name(meta.algorithm()) {
        Some(alg) => alg,
        // `none` and everything else unknown: never verified.
        None => return Err(Some(TokenError::UnsupportedAlgorithm)),
    };
    let kid = meta.key_id();

    let mut options = rules.options.clone();
    options.artificial_time = Some(UnixTimeStamp::from_secs(now));

    let candidates: Vec<&Verifier> = if alg == Alg::HS256 {
        match keys.hs256 {
            Some(v) => vec![v],
            None => return Err(Some(TokenError::UnsupportedAlgorithm)),
        }
    } else {
        keys.sets
            .iter()
            .flatten()
            .flat_map(|set| set.candidates(alg, kid))
            .collect()
    };
    if candidates.is_empty() {
        return Err(None);
    }
    // A key whose signature check failed says nothing about the token's
    // claims; a key that verified the signature and then refused a claim
    // (expired, wrong issuer...) gives the true reason. Without a `kid` every
    // key of the `alg` is tried, so the signer need not be the first.
    let mut verdict = None;
    for verifier in candidates {
        match verify_with(verifier, token, options.clone()) {
            Ok(claims) => {
                let expires_at = claims
                    .expires_at
                    .map(|t| t.as_secs())
                    .ok_or(Some(TokenError::MissingClaim))?;
                return Ok(Claims {
                    subject: claims.subject,
                    expires_at,
                    extra: claims.custom,
                });
            }
            Err(TokenError::BadSignature) => {}
            Err(e) => {
                verdict.get_or_insert(e);
            }
        }
    }
    Err(Some(verdict.unwrap_or(TokenError::BadSignature)))
}

fn verify_with(
    verifier: &Verifier,
    token: &str,
    options: VerificationOptions,
) -> Result<JWTClaims<Map<String, Value>>, TokenError> {
    let o = Some(options);
    let result = match verifier {
        Verifier::Rs256(k) => k.verify_token(token, o),
        Verifier::Rs384(k) => k.verify_token(token, o),
        Verifier::Rs512(k) => k.verify_token(token, o),
        Verifier::Ps256(k) => k.verify_token(token, o),
        Verifier::Ps384(k) => k.verify_token(token, o),
        Verifier::Ps512(k) => k.verify_token(token, o),
        Verifier::Es256(k) => k.verify_token(token, o),
        Verifier::Es384(k) => k.verify_token(token, o),
        Verifier::EdDsa(k) => k.verify_token(token, o),
        Verifier::Hs256(k) => k.verify_token(token, o),
    };
    result.map_err(|e| classify(&e))
}

fn classify(error: &jwt_simple::Error) -> TokenError {
    match error.downcast_ref::<JWTError>() {
        Some(JWTError::InvalidSignature | JWTError::InvalidAuthenticationTag) => {
            TokenError::BadSignature
        }
        Some(JWTError::TokenHasExpired) => TokenError::Expired,
        Some(JWTError::TokenNotValidYet | JWTError::ClockDrift) => TokenError::NotYetValid,
        Some(JWTError::RequiredIssuerMismatch | JWTError::RequiredIssuerMissing) => {
            TokenError::WrongIssuer
        }
        Some(JWTError::RequiredAudienceMismatch | JWTError::RequiredAudienceMissing) => {
            TokenError::WrongAudience
        }
        Some(JWTError::AlgorithmMismatch) => TokenError::UnsupportedAlgorithm,
        _ => TokenError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("a.b.c"));
        assert!(looks_like_jwt("a.b."));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("opaque-token_123"));
    }

    /// Two RSA keys without a `kid` match: the token names no key, so both are tried.
    fn two_rsa_keys() -> (KeySet, jwt_simple::prelude::RS256KeyPair) {
        use base64::Engine;
        use jwt_simple::prelude::RS256KeyPair;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = |pem: &str, kid: &str| {
            let c = RS256KeyPair::from_pem(pem)
                .unwrap()
                .public_key()
                .to_components();
            serde_json::json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                               "n": b64(&c.n), "e": b64(&c.e)})
        };
        let first = include_str!("../../../tests/fixtures/oauth2/keys/rsa-1.pem");
        let second = include_str!("../../../tests/fixtures/oauth2/keys/rsa-2.pem");
        let doc = serde_json::json!({"keys": [jwk(first, "rsa-1"), jwk(second, "rsa-2")]});
        let set = super::super::parse_remote_jwks(doc.to_string().as_bytes()).unwrap();
        (set, RS256KeyPair::from_pem(second).unwrap())
    }

    #[test]
    fn the_key_that_verified_the_signature_gives_the_reason() {
        use jwt_simple::prelude::{Claims as Jwt, RSAKeyPairLike};
        let (set, signer) = two_rsa_keys();
        let keys = Keys {
            sets: [Some(&set), None],
            hs256: None,
        };
        let rules = Rules::new("https://idp.example.com", &["models".to_string()], 0);
        let claims = Jwt::create(Duration::from_secs(60))
            .with_issuer("https://idp.example.com")
            .with_audience("models")
            .with_subject("alice");
        // No kid: signed by the second key; the first fails the signature check.
        let token = signer.sign(claims).unwrap();
        let issued = Token::decode_metadata(&token).unwrap();
        assert_eq!(issued.key_id(), None);
        let issued_at = jwt_simple::prelude::Clock::now_since_epoch().as_secs();
        // Valid now: accepted by the second key.
        assert!(verify(&token, &keys, &rules, issued_at).is_ok());
        // An hour later it has expired: that is the verdict, not a bad signature.
        assert_eq!(
            verify(&token, &keys, &rules, issued_at + 3_600).err(),
            Some(Some(TokenError::Expired))
        );
        // A signature neither key made: bad, whatever the claims say.
        let mut forged = token.into_bytes();
        let middle = forged.len() - 20;
        forged[middle] = if forged[middle] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(
            verify(&forged, &keys, &rules, issued_at + 3_600).err(),
            Some(Some(TokenError::BadSignature))
        );
    }
}
