//! JSON Web Key Sets (RFC 7517) into a [`KeySet`] of ready-to-use verifiers.
//!
//! A key only ever verifies the algorithms of its own key type: RSA keys
//! RS256/384/512 and PS256/384/512, EC P-256 keys ES256, EC P-384 keys ES384,
//! OKP Ed25519 keys EdDSA. Symmetric (`oct`) keys are refused in a key set, so
//! a public key can never be used as an HMAC secret (algorithm confusion).
//!
//! The configured `jwks` is parsed strictly (any unusable key is a
//! configuration error naming the field); a JWKS fetched from the identity
//! provider is parsed leniently (unusable keys, e.g. encryption keys, are
//! skipped) as long as at least one usable key remains.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use jwt_simple::prelude::{
    ES256PublicKey, ES384PublicKey, Ed25519PublicKey, HS256Key, PS256PublicKey, PS384PublicKey,
    PS512PublicKey, RS256PublicKey, RS384PublicKey, RS512PublicKey,
};
use serde::Deserialize;

/// base64url, padding optional (RFC 7515 omits it; some producers keep it).
pub(crate) const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The largest JWKS document accepted from the network.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The JWS algorithms the filter verifies. `none` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
}

impl Alg {
    const RSA: [Alg; 6] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
    ];

    /// The algorithm named by a JOSE `alg` value (exact, case-sensitive as RFC 7515 says).
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            // RFC 8037 names it EdDSA; RFC 9864 adds the fully specified "Ed25519".
            "EdDSA" | "Ed25519" => Alg::EdDSA,
            "HS256" => Alg::HS256,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
            Alg::HS256 => "HS256",
        }
    }
}

/// A prepared verification key for exactly one algorithm.
pub(crate) enum Verifier {
    Rs256(RS256PublicKey),
    Rs384(RS384PublicKey),
    Rs512(RS512PublicKey),
    Ps256(PS256PublicKey),
    Ps384(PS384PublicKey),
    Ps512(PS512PublicKey),
    Es256(ES256PublicKey),
    Es384(ES384PublicKey),
    EdDsa(Ed25519PublicKey),
    Hs256(HS256Key),
}

impl Verifier {
    pub(crate) fn alg(&self) -> Alg {
        match self {
            Verifier::Rs256(_) => Alg::RS256,
            Verifier::Rs384(_) => Alg::RS384,
            Verifier::Rs512(_) => Alg::RS512,
            Verifier::Ps256(_) => Alg::PS256,
            Verifier::Ps384(_) => Alg::PS384,
            Verifier::Ps512(_) => Alg::PS512,
            Verifier::Es256(_) => Alg::ES256,
            Verifier::Es384(_) => Alg::ES384,
            Verifier::EdDsa(_) => Alg::EdDSA,
            Verifier::Hs256(_) => Alg::HS256,
        }
    }

    fn rsa(alg: Alg, n: &[u8], e: &[u8]) -> Result<Verifier, jwt_simple::Error> {
        Ok(match alg {
            Alg::RS384 => Verifier::Rs384(RS384PublicKey::from_components(n, e)?),
            Alg::RS512 => Verifier::Rs512(RS512PublicKey::from_components(n, e)?),
            Alg::PS256 => Verifier::Ps256(PS256PublicKey::from_components(n, e)?),
            Alg::PS384 => Verifier::Ps384(PS384PublicKey::from_components(n, e)?),
            Alg::PS512 => Verifier::Ps512(PS512PublicKey::from_components(n, e)?),
            _ => Verifier::Rs256(RS256PublicKey::from_components(n, e)?),
        })
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // An HMAC key is a secret.
            Verifier::Hs256(_) => f.write_str("HS256(<redacted>)"),
            other => write!(f, "{}(public key)", other.alg().name()),
        }
    }
}

/// One usable key: its `kid` (if any) and the verifier for one algorithm.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) kid: Option<String>,
    pub(crate) verifier: Verifier,
}

/// The keys of one JWKS, ready to verify.
#[derive(Debug, Default)]
pub struct KeySet {
    entries: Vec<Entry>,
    /// How many JWKs the entries come from (an RSA key without `alg` gives six).
    keys: usize,
}

impl KeySet {
    /// The number of usable JWKs.
    pub fn len(&self) -> usize {
        self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds the verifiers of one JWK.
    pub(crate) fn add_key(&mut self, entries: Vec<Entry>) {
        if !entries.is_empty() {
            self.keys += 1;
            self.entries.extend(entries);
        }
    }

    /// The keys that may verify a token with this `alg` and `kid`: same
    /// algorithm, and the same `kid` when both the token and the key name one.
    pub(crate) fn candidates<'a>(
        &'a self,
        alg: Alg,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Verifier> + 'a {
        self.entries
            .iter()
            .filter(move |e| {
                e.verifier.alg() == alg
                    && match (kid, e.kid.as_deref()) {
                        (Some(want), Some(have)) => want == have,
                        _ => true,
                    }
            })
            .map(|e| &e.verifier)
    }

    /// Distinct `kid`s, for logs.
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self
            .entries
            .iter()
            .filter_map(|e| e.kid.as_deref())
            .collect();
        kids.dedup();
        kids
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// A JWKS document. Members other than `keys` are allowed (RFC 7517 §5).
#[derive(Deserialize)]
pub(crate) struct RawJwks {
    pub(crate) keys: Vec<RawJwk>,
}

/// One JWK: only the members the filter reads. Others (`x5c`, `x5t`, ...) are
/// allowed and ignored.
#[derive(Deserialize)]
pub(crate) struct RawJwk {
    #[serde(default)]
    kty: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    /// Private material: must not be configured. Only its presence is checked.
    #[serde(default)]
    d: Option<serde::de::IgnoredAny>,
}

/// Why one JWK cannot be used: the member at fault and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub member: &'static str,
    pub message: String,
}

impl KeyError {
    fn new(member: &'static str, message: impl Into<String>) -> Self {
        Self {
            member,
            message: message.into(),
        }
    }
}

/// How strictly to treat keys that cannot verify signatures.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Strictness {
    /// Configured by the operator: every key must be usable.
    Config,
    /// Published by the identity provider: keys for other uses are skipped.
    Remote,
}

/// Why a JWK gives no verifier.
enum Problem {
    /// Broken: a configuration error, and a remote key set refuses it too.
    Invalid(KeyError),
    /// Well-formed but not for the filter (another use, curve, key type):
    /// a configuration error, skipped in a remote key set.
    Unsupported(KeyError),
}

impl From<KeyError> for Problem {
    fn from(error: KeyError) -> Self {
        Problem::Invalid(error)
    }
}

fn unsupported<T>(member: &'static str, message: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Unsupported(KeyError::new(member, message)))
}

/// Builds the verifiers of one JWK. `Ok(vec![])` means "not a signature key,
/// skipped" (remote only).
pub(crate) fn build_key(jwk: &RawJwk, strictness: Strictness) -> Result<Vec<Entry>, KeyError> {
    let verifiers = match verifiers(jwk, strictness) {
        Ok(v) => v,
        Err(Problem::Unsupported(_)) if strictness == Strictness::Remote => Vec::new(),
        Err(Problem::Unsupported(e) | Problem::Invalid(e)) => return Err(e),
    };
    Ok(verifiers
        .into_iter()
        .map(|verifier| Entry {
            kid: jwk.kid.clone(),
            verifier,
        })
        .collect())
}

fn verifiers(jwk: &RawJwk, strictness: Strictness) -> Result<Vec<Verifier>, Problem> {
    let kty = jwk
        .kty
        .as_deref()
        .ok_or_else(|| KeyError::new("kty", "is required"))?;
    check_purpose(jwk, strictness)?;
    let alg = declared_alg(jwk)?;
    match kty {
        "RSA" => rsa_key(jwk, alg),
        "EC" => ec_key(jwk, alg).map(|v| vec![v]),
        "OKP" => okp_key(jwk, alg).map(|v| vec![v]),
        "oct" => unsupported(
            "kty",
            "symmetric keys (\"oct\") are not accepted in a key set; configure hs256_secret for HS256",
        ),
        other => unsupported(
            "kty",
            format!(
                "unsupported key type \"{}\" (supported: RSA, EC, OKP)",
                other.escape_debug()
            ),
        ),
    }
}

/// `use`, `key_ops` and private material: is this a public signature key?
fn check_purpose(jwk: &RawJwk, strictness: Strictness) -> Result<(), Problem> {
    if let Some(u) = jwk.use_.as_deref() {
        if u != "sig" {
            return unsupported(
                "use",
                format!(
                    "\"{}\" keys cannot verify signatures; use \"sig\" or remove the key",
                    u.escape_debug()
                ),
            );
        }
    }
    if let Some(ops) = &jwk.key_ops {
        if !ops.iter().any(|op| op == "verify") {
            return unsupported("key_ops", "does not include \"verify\"");
        }
    }
    // A provider that publishes a private key is misconfigured, but the
    // public part is still the public part: there the member is ignored.
    if jwk.d.is_some() && strictness == Strictness::Config {
        return Err(KeyError::new(
            "d",
            "private key material must not be configured; give only the public key",
        )
        .into());
    }
    Ok(())
}

/// The `alg` member, if any: one of the asymmetric algorithms.
fn declared_alg(jwk: &RawJwk) -> Result<Option<Alg>, Problem> {
    let Some(name) = jwk.alg.as_deref() else {
        return Ok(None);
    };
    match Alg::from_name(name) {
        Some(Alg::HS256) | None => unsupported(
            "alg",
            format!(
                "unsupported algorithm \"{}\" (supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)",
                name.escape_debug()
            ),
        ),
        Some(a) => Ok(Some(a)),
    }
}

/// An RSA key verifies its `alg`, or every RSA algorithm when none is named.
fn rsa_key(jwk: &RawJwk, alg: Option<Alg>) -> Result<Vec<Verifier>, Problem> {
    check_alg(alg, &Alg::RSA, "RSA")?;
    let n = member(&jwk.n, "n")?;
    let e = member(&jwk.e, "e")?;
    check_rsa(&n, &e)?;
    let algs: Vec<Alg> = match alg {
        Some(a) => vec![a],
        None => Alg::RSA.to_vec(),
    };
    let verifiers = algs
        .into_iter()
        .map(|a| {
            Verifier::rsa(a, &n, &e)
                .map_err(|_| KeyError::new("n", "is not a valid RSA public key"))
        })
        .collect::<Result<_, _>>()?;
    Ok(verifiers)
}

/// An EC key on P-256 (ES256) or P-384 (ES384).
fn ec_key(jwk: &RawJwk, alg: Option<Alg>) -> Result<Verifier, Problem> {
    let crv = curve(jwk, "EC", &["P-256", "P-384"])?;
    let (expected, size) = if crv == "P-256" {
        (Alg::ES256, 32)
    } else {
        (Alg::ES384, 48)
    };
    check_alg(alg, &[expected], crv)?;
    let x = member(&jwk.x, "x")?;
    let y = member(&jwk.y, "y")?;
    coordinate_size(&x, "x", size, crv)?;
    coordinate_size(&y, "y", size, crv)?;
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let not_on_curve = || KeyError::new("x", format!("x and y are not a point on {crv}"));
    let verifier = if expected == Alg::ES256 {
        Verifier::Es256(ES256PublicKey::from_bytes(&point).map_err(|_| not_on_curve())?)
    } else {
        Verifier::Es384(ES384PublicKey::from_bytes(&point).map_err(|_| not_on_curve())?)
    };
    Ok(verifier)
}

/// An OKP key on Ed25519 (EdDSA).
fn okp_key(jwk: &RawJwk, alg: Option<Alg>) -> Result<Verifier, Problem> {
    let crv = curve(jwk, "OKP", &["Ed25519"])?;
    check_alg(alg, &[Alg::EdDSA], crv)?;
    let x = member(&jwk.x, "x")?;
    coordinate_size(&x, "x", 32, crv)?;
    let key = Ed25519PublicKey::from_bytes(&x)
        .map_err(|_| KeyError::new("x", "is not a valid Ed25519 public key"))?;
    Ok(Verifier::EdDsa(key))
}

/// The `crv` of an EC or OKP key, if it is one of the `supported` curves.
fn curve<'a>(jwk: &'a RawJwk, kty: &str, supported: &[&str]) -> Result<&'a str, Problem> {
    let crv = jwk
        .crv
        .as_deref()
        .ok_or_else(|| KeyError::new("crv", format!("is required for {kty} keys")))?;
    if !supported.contains(&crv) {
        return unsupported(
            "crv",
            format!(
                "unsupported curve \"{}\" (supported: {})",
                crv.escape_debug(),
                supported.join(", ")
            ),
        );
    }
    Ok(crv)
}

/// A declared `alg` must be one that a `key` key verifies.
fn check_alg(alg: Option<Alg>, allowed: &[Alg], key: &str) -> Result<(), KeyError> {
    match alg {
        Some(a) if !allowed.contains(&a) => Err(KeyError::new(
            "alg",
            format!("\"{}\" cannot be used with a {key} key", a.name()),
        )),
        _ => Ok(()),
    }
}

/// A coordinate must be `size` bytes on curve `crv`.
fn coordinate_size(
    bytes: &[u8],
    name: &'static str,
    size: usize,
    crv: &str,
) -> Result<(), KeyError> {
    if bytes.len() != size {
        return Err(KeyError::new(
            name,
            format!("must be {size} bytes for {crv}, got {}", bytes.len()),
        ));
    }
    Ok(())
}

fn member(value: &Option<String>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let value = value
        .as_deref()
        .ok_or_else(|| KeyError::new(name, "is required"))?;
    let bytes = BASE64URL
        .decode(value.as_bytes())
        .map_err(|_| KeyError::new(name, "is not base64url"))?;
    if bytes.is_empty() {
        return Err(KeyError::new(name, "must not be empty"));
    }
    Ok(bytes)
}

fn trim_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

/// The key policy jwt-simple enforces, checked first for a clear message.
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), KeyError> {
    let n = trim_leading_zeros(n);
    let bits = match n.first() {
        Some(top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    };
    if bits < 2048 {
        return Err(KeyError::new(
            "n",
            format!("RSA modulus of {bits} bits is too small (minimum 2048)"),
        ));
    }
    if bits > 4096 {
        return Err(KeyError::new(
            "n",
            format!("RSA modulus of {bits} bits is too large (maximum 4096)"),
        ));
    }
    if trim_leading_zeros(e) != [1, 0, 1] {
        return Err(KeyError::new("e", "RSA exponent must be 65537 (\"AQAB\")"));
    }
    Ok(())
}

/// Parses a JWKS fetched from the identity provider. Unusable keys are
/// skipped; the result has at least one key.
pub fn parse_remote(bytes: &[u8]) -> Result<KeySet, String> {
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!(
            "the document is {} bytes (maximum {MAX_JWKS_BYTES})",
            bytes.len()
        ));
    }
    let raw: RawJwks =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut set = KeySet::default();
    let mut first_error = None;
    for (i, jwk) in raw.keys.iter().enumerate() {
        match build_key(jwk, Strictness::Remote) {
            Ok(entries) => set.add_key(entries),
            Err(e) => {
                first_error.get_or_insert_with(|| format!("keys[{i}].{}: {}", e.member, e.message));
            }
        }
    }
    if set.is_empty() {
        return Err(match first_error {
            Some(e) => format!("no usable signature key ({e})"),
            None => "no usable signature key".to_string(),
        });
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const RFC7515_A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

    fn jwk(json: &str) -> RawJwk {
        serde_json::from_str(json).unwrap()
    }

    fn err(json: &str) -> String {
        let e = build_key(&jwk(json), Strictness::Config).unwrap_err();
        format!("{}: {}", e.member, e.message)
    }

    #[test]
    fn rsa_without_alg_verifies_all_rsa_algorithms() {
        let k = build_key(
            &jwk(&format!(
                r#"{{"kty":"RSA","kid":"r1","n":"{RFC7515_A2_N}","e":"AQAB"}}"#
            )),
            Strictness::Config,
        )
        .unwrap();
        let algs: Vec<Alg> = k.iter().map(|e| e.verifier.alg()).collect();
        assert_eq!(algs, Alg::RSA.to_vec());
        assert!(k.iter().all(|e| e.kid.as_deref() == Some("r1")));
    }

    #[test]
    fn alg_pins_one_algorithm_and_must_match_the_key_type() {
        let k = build_key(
            &jwk(&format!(
                r#"{{"kty":"RSA","alg":"PS384","n":"{RFC7515_A2_N}","e":"AQAB"}}"#
            )),
            Strictness::Config,
        )
        .unwrap();
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].verifier.alg(), Alg::PS384);
        assert_eq!(
            err(&format!(
                r#"{{"kty":"RSA","alg":"ES256","n":"{RFC7515_A2_N}","e":"AQAB"}}"#
            )),
            "alg: \"ES256\" cannot be used with a RSA key"
        );
        assert_eq!(
            err(&format!(
                r#"{{"kty":"RSA","alg":"HS256","n":"{RFC7515_A2_N}","e":"AQAB"}}"#
            )),
            "alg: unsupported algorithm \"HS256\" (supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"
        );
        assert_eq!(
            err(&format!(
                r#"{{"kty":"RSA","alg":"none","n":"{RFC7515_A2_N}","e":"AQAB"}}"#
            )),
            "alg: unsupported algorithm \"none\" (supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"
        );
    }

    #[test]
    fn config_errors_name_the_member() {
        assert_eq!(err(r#"{"kid":"a"}"#), "kty: is required");
        assert_eq!(
            err(r#"{"kty":"oct","k":"c2VjcmV0"}"#),
            "kty: symmetric keys (\"oct\") are not accepted in a key set; configure hs256_secret for HS256"
        );
        assert_eq!(
            err(r#"{"kty":"DSA"}"#),
            "kty: unsupported key type \"DSA\" (supported: RSA, EC, OKP)"
        );
        assert_eq!(err(r#"{"kty":"RSA","e":"AQAB"}"#), "n: is required");
        assert_eq!(
            err(r#"{"kty":"RSA","n":"AQAB!","e":"AQAB"}"#),
            "n: is not base64url"
        );
        assert_eq!(
            err(r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#),
            "n: RSA modulus of 17 bits is too small (minimum 2048)"
        );
        assert_eq!(
            err(&format!(r#"{{"kty":"RSA","n":"{RFC7515_A2_N}","e":"Aw"}}"#)),
            "e: RSA exponent must be 65537 (\"AQAB\")"
        );
        assert_eq!(
            err(r#"{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}"#),
            "crv: unsupported curve \"P-521\" (supported: P-256, P-384)"
        );
        assert_eq!(
            err(r#"{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}"#),
            "x: must be 32 bytes for P-256, got 3"
        );
        let zero = "A".repeat(43);
        assert_eq!(
            err(&format!(
                r#"{{"kty":"EC","crv":"P-256","x":"{zero}","y":"{zero}"}}"#
            )),
            "x: x and y are not a point on P-256"
        );
        assert_eq!(
            err(r#"{"kty":"EC","x":"AA","y":"AA"}"#),
            "crv: is required for EC keys"
        );
        assert_eq!(
            err(r#"{"kty":"EC","crv":"P-256","alg":"ES384","x":"AA"}"#),
            "alg: \"ES384\" cannot be used with a P-256 key"
        );
        assert_eq!(
            err(r#"{"kty":"OKP","x":"AA"}"#),
            "crv: is required for OKP keys"
        );
        assert_eq!(
            err(r#"{"kty":"OKP","crv":"Ed25519","alg":"ES256","x":"AA"}"#),
            "alg: \"ES256\" cannot be used with a Ed25519 key"
        );
        assert_eq!(
            err(r#"{"kty":"EC","crv":"P-384","x":"AAAA"}"#),
            "y: is required"
        );
        assert_eq!(
            err(r#"{"kty":"OKP","crv":"X25519","x":"AA"}"#),
            "crv: unsupported curve \"X25519\" (supported: Ed25519)"
        );
        assert_eq!(
            err(r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#),
            "x: must be 32 bytes for Ed25519, got 3"
        );
        assert_eq!(
            err(r#"{"kty":"OKP","crv":"Ed25519","use":"enc","x":"AAAA"}"#),
            "use: \"enc\" keys cannot verify signatures; use \"sig\" or remove the key"
        );
        assert_eq!(
            err(r#"{"kty":"OKP","crv":"Ed25519","d":"AAAA","x":"AAAA"}"#),
            "d: private key material must not be configured; give only the public key"
        );
    }

    #[test]
    fn remote_sets_skip_keys_for_other_uses() {
        let doc = format!(
            r#"{{"keys":[{{"kty":"RSA","use":"enc","n":"x","e":"AQAB"}},
                         {{"kty":"oct","k":"c2VjcmV0"}},
                         {{"kty":"RSA","kid":"s","use":"sig","alg":"RS256","n":"{RFC7515_A2_N}","e":"AQAB"}}],
                "extra":true}}"#
        );
        let set = parse_remote(doc.as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.kids(), vec!["s"]);
        assert_eq!(
            parse_remote(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap_err(),
            "no usable signature key"
        );
        assert_eq!(
            parse_remote(br#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#).unwrap_err(),
            "no usable signature key (keys[0].n: RSA modulus of 17 bits is too small (minimum 2048))"
        );
        assert!(parse_remote(b"<html>")
            .unwrap_err()
            .starts_with("not a JWKS document"));
        assert!(parse_remote(br#"{"kids":[]}"#)
            .unwrap_err()
            .starts_with("not a JWKS document: missing field `keys`"));
        let big = vec![b' '; MAX_JWKS_BYTES + 1];
        assert_eq!(
            parse_remote(&big).unwrap_err(),
            format!(
                "the document is {} bytes (maximum {MAX_JWKS_BYTES})",
                MAX_JWKS_BYTES + 1
            )
        );
    }

    #[test]
    fn candidates_match_alg_and_kid() {
        let doc = format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"a","alg":"RS256","n":"{RFC7515_A2_N}","e":"AQAB"}},
                         {{"kty":"RSA","alg":"RS256","n":"{RFC7515_A2_N}","e":"AQAB"}}]}}"#
        );
        let set = parse_remote(doc.as_bytes()).unwrap();
        assert_eq!(set.candidates(Alg::RS256, Some("a")).count(), 2);
        assert_eq!(set.candidates(Alg::RS256, Some("b")).count(), 1);
        assert_eq!(set.candidates(Alg::RS256, None).count(), 2);
        assert_eq!(set.candidates(Alg::PS256, Some("a")).count(), 0);
    }
}
