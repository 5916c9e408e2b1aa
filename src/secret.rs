//! Secrets in the plugin configuration (the introspection `client_secret`,
//! `hs256_secret`, htpasswd lines): given inline, or by reference to an
//! environment variable of the VM, `{"env": "NAME"}`, so that the value is not
//! in the WasmPlugin or the Envoy config dump.
//!
//! References are resolved once, at configure time, through a [`Lookup`] the
//! caller passes in: [`process_env`] inside Envoy (the VM's WASI environment,
//! `vm_config.environment_variables`), a map in tests. Errors name the field
//! and the variable, never the value; [`SecretSource`]'s `Debug` shows the
//! variable name but never an inline value.
//!
//! A leaf: it uses only [`crate::validate`].

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use crate::validate::ConfigError;

/// Looks up an environment variable: `Some(value)` when it is set.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment. Inside Envoy this is the VM's WASI environment:
/// the `vm_config.environment_variables` of the Wasm filter (Istio:
/// `WasmPlugin.spec.vmConfig.env`). A value that is not UTF-8 counts as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// What a secret field says in the configuration: the value, or where to find it.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The value itself (a JSON string).
    Inline(String),
    /// `{"env": "NAME"}`: the value of environment variable `NAME`.
    Env(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretSource::Env(name) => f.debug_tuple("Env").field(name).finish(),
        }
    }
}

/// What a secret field accepts, in the one error a wrong shape gets (it never
/// repeats what was written: that may be the secret).
const EXPECTED: &str = "must be a string or {\"env\": \"NAME\"}";

impl SecretSource {
    /// The secret's value. `path` is the field (`auth.hs256_secret`). An
    /// inline value is returned as written; a variable's value loses one
    /// trailing line break (`\n` or `\r\n`, as files turned into Kubernetes
    /// Secrets often end), and an unset or empty variable is an error that
    /// names both the field and the variable.
    pub fn resolve(&self, path: &str, env: Lookup<'_>) -> Result<String, ConfigError> {
        match self {
            SecretSource::Inline(value) => Ok(value.clone()),
            SecretSource::Env(name) => {
                let mut value = env_value(path, name, env)?;
                if value.ends_with('\n') {
                    value.pop();
                    if value.ends_with('\r') {
                        value.pop();
                    }
                }
                if value.is_empty() {
                    return Err(ConfigError::new(
                        path,
                        format!("environment variable {name} is empty"),
                    ));
                }
                Ok(value)
            }
        }
    }
}

/// The value of `name`, unchanged. An invalid name is an error at `path.env`,
/// an unset variable an error at `path`.
fn env_value(path: &str, name: &str, env: Lookup<'_>) -> Result<String, ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(format!("{path}.env"), "must not be empty"));
    }
    if !name.chars().all(|c| c.is_ascii_graphic() && c != '=') {
        return Err(ConfigError::new(
            format!("{path}.env"),
            format!(
                "\"{}\" is not a valid environment variable name (visible ASCII without \"=\")",
                name.escape_debug()
            ),
        ));
    }
    env(name)
        .ok_or_else(|| ConfigError::new(path, format!("environment variable {name} is not set")))
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Every failure gets the same fixed message: serde's own would quote
        // a mistyped value, and that may be the secret.
        d.deserialize_any(SourceVisitor)
            .map_err(|_| de::Error::custom(EXPECTED))
    }
}

struct SourceVisitor;

impl<'de> Visitor<'de> for SourceVisitor {
    type Value = SecretSource;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretSource, E> {
        Ok(SecretSource::Inline(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<SecretSource, E> {
        Ok(SecretSource::Inline(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretSource, A::Error> {
        // Exactly one member, `env`, a string. (A value of another type fails
        // here too; `deserialize` replaces whatever error with `EXPECTED`.)
        match map.next_key::<String>()?.as_deref() {
            Some("env") => {}
            _ => return Err(de::Error::custom(EXPECTED)),
        }
        let name: String = map.next_value()?;
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(EXPECTED));
        }
        Ok(SecretSource::Env(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::from_json;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[allow(dead_code)]
        s: SecretSource,
    }

    fn source(json: &str) -> Result<SecretSource, String> {
        from_json::<Doc>(json.as_bytes())
            .map(|d| d.s)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_string_or_an_env_reference() {
        assert_eq!(source(r#"{"s":"v"}"#), Ok(SecretSource::Inline("v".into())));
        assert_eq!(
            source(r#"{"s":{"env":"IDP_SECRET"}}"#),
            Ok(SecretSource::Env("IDP_SECRET".into()))
        );
    }

    #[test]
    fn any_other_shape_gets_one_message_that_echoes_nothing() {
        for bad in [
            r#"7"#,
            r#"["hunter2"]"#,
            r#"{"v":"hunter2"}"#,
            r#"{"env":"A","x":"hunter2"}"#,
            r#"{"env":"A","env":"B"}"#,
            r#"{}"#,
            r#"null"#,
            r#"true"#,
        ] {
            let e = source(&format!(r#"{{"s":{bad}}}"#)).unwrap_err();
            assert_eq!(e, format!("s: {EXPECTED}"), "{bad}");
        }
        // A name that is not a string is pointed at.
        for bad in [r#"{"env":7}"#, r#"{"env":["hunter2"]}"#] {
            let e = source(&format!(r#"{{"s":{bad}}}"#)).unwrap_err();
            assert_eq!(e, format!("s.env: {EXPECTED}"), "{bad}");
        }
    }

    #[test]
    fn resolution_names_the_field_and_the_variable_never_the_value() {
        let lookup = env(&[("SET", "s3cret\r\n"), ("EMPTY", ""), ("NL", "\n")]);
        let r = |s: SecretSource| s.resolve("auth.x", &lookup).map_err(|e| e.to_string());
        assert_eq!(r(SecretSource::Inline(" v\n".into())), Ok(" v\n".into()));
        assert_eq!(r(SecretSource::Env("SET".into())), Ok("s3cret".into()));
        assert_eq!(
            r(SecretSource::Env("UNSET".into())),
            Err("auth.x: environment variable UNSET is not set".into())
        );
        assert_eq!(
            r(SecretSource::Env("EMPTY".into())),
            Err("auth.x: environment variable EMPTY is empty".into())
        );
        assert_eq!(
            r(SecretSource::Env("NL".into())),
            Err("auth.x: environment variable NL is empty".into())
        );
        assert_eq!(
            r(SecretSource::Env("".into())),
            Err("auth.x.env: must not be empty".into())
        );
        assert_eq!(
            r(SecretSource::Env("A=B".into())),
            Err("auth.x.env: \"A=B\" is not a valid environment variable name (visible ASCII without \"=\")".into())
        );
    }

    #[test]
    fn debug_shows_the_variable_not_the_value() {
        let dbg = format!(
            "{:?} {:?}",
            SecretSource::Inline("hunter2".into()),
            SecretSource::Env("IDP".into())
        );
        assert_eq!(dbg, "Inline(<redacted>) Env(\"IDP\")");
    }
}
