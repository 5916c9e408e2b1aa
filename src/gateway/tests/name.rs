use crate::gateway::{validate_name, validate_names};

#[test]
fn names_follow_the_rules() {
    for ok in ["fraud", "a", "fraud-v2", "0", &"a".repeat(63)] {
        assert_eq!(validate_name(0, ok), Ok(()), "{ok}");
    }
    let cases: &[(&str, &str)] = &[
        ("", "gateways[4].name: required (a-z, 0-9 and '-')"),
        (
            "Fraud",
            "gateways[4].name: \"Fraud\": 'F' is not allowed (use only a-z, 0-9 and '-')",
        ),
        (
            "fraud_v2",
            "gateways[4].name: \"fraud_v2\": '_' is not allowed (use only a-z, 0-9 and '-')",
        ),
        (
            "fraud v2",
            "gateways[4].name: \"fraud v2\": ' ' is not allowed (use only a-z, 0-9 and '-')",
        ),
        (
            "fr\u{e9}ud",
            "gateways[4].name: \"fr\u{e9}ud\": '\u{e9}' is not allowed (use only a-z, 0-9 and '-')",
        ),
        (
            "a.b",
            "gateways[4].name: \"a.b\": '.' is not allowed (use only a-z, 0-9 and '-')",
        ),
    ];
    for (name, message) in cases {
        assert_eq!(validate_name(4, name).unwrap_err().to_string(), *message);
    }
    let long = "a".repeat(64);
    assert_eq!(
        validate_name(1, &long).unwrap_err().to_string(),
        format!("gateways[1].name: \"{long}\": 64 characters, at most 63 are allowed")
    );
}

#[test]
fn names_are_unique() {
    assert_eq!(validate_names(&["fraud", "chat", "embed"]), Ok(()));
    let err = validate_names(&["fraud", "chat", "embed", "fraud"]).unwrap_err();
    assert_eq!(err.path, "gateways[3].name");
    assert_eq!(
        err.to_string(),
        "gateways[3].name: \"fraud\" is already used by gateways[0]"
    );
    assert_eq!(
        validate_names(&["ok", "Bad"]).unwrap_err().to_string(),
        "gateways[1].name: \"Bad\": 'B' is not allowed (use only a-z, 0-9 and '-')"
    );
}
