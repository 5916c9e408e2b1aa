//! Gateway names: the stable identifier an operator gives each gateway, used in
//! logs and as the `gateway` metric label.

use std::collections::HashMap;

use super::GatewayError;

/// The longest gateway name accepted (a DNS label's limit, so a name also fits
/// wherever a Kubernetes label value or a DNS label is expected).
pub const MAX_NAME_LEN: usize = 63;

/// Checks one gateway name: required (not empty), only `a-z`, `0-9` and `-`,
/// at most [`MAX_NAME_LEN`] characters. The error names `gateways[{index}].name`.
pub fn validate_name(index: usize, name: &str) -> Result<(), GatewayError> {
    let path = || format!("gateways[{index}].name");
    if name.is_empty() {
        return Err(GatewayError::new(path(), "required (a-z, 0-9 and '-')"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
    {
        return Err(GatewayError::new(
            path(),
            format!("{name:?}: {bad:?} is not allowed (use only a-z, 0-9 and '-')"),
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(GatewayError::new(
            path(),
            format!(
                "{name:?}: {} characters, at most {MAX_NAME_LEN} are allowed",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// Checks every name with [`validate_name`], then that no two gateways share a
/// name: `gateways[3].name: "fraud" is already used by gateways[1]`.
pub fn validate_names<S: AsRef<str>>(names: &[S]) -> Result<(), GatewayError> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let name = name.as_ref();
        validate_name(index, name)?;
        if let Some(first) = seen.insert(name, index) {
            return Err(GatewayError::new(
                format!("gateways[{index}].name"),
                format!("{name:?} is already used by gateways[{first}]"),
            ));
        }
    }
    Ok(())
}
