//! What a response was: its status class, or a gRPC error.

/// The class of a response, as counted per gateway and upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// 1xx as the final response (`101 Switching Protocols`).
    Informational,
    Success,
    Redirect,
    ClientError,
    ServerError,
    /// A gRPC response whose `grpc-status` is not 0 (in headers or trailers).
    GrpcError,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::Informational,
        Class::Success,
        Class::Redirect,
        Class::ClientError,
        Class::ServerError,
        Class::GrpcError,
    ];

    /// The metric label and the name used in `failure_statuses`.
    pub fn label(self) -> &'static str {
        match self {
            Class::Informational => "1xx",
            Class::Success => "2xx",
            Class::Redirect => "3xx",
            Class::ClientError => "4xx",
            Class::ServerError => "5xx",
            Class::GrpcError => "grpc_error",
        }
    }

    pub fn from_label(label: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.label() == label)
    }

    /// The class of an HTTP status (anything outside 100..=599 is a server error).
    pub fn of_status(status: u32) -> Class {
        match status {
            100..=199 => Class::Informational,
            200..=299 => Class::Success,
            300..=399 => Class::Redirect,
            400..=499 => Class::ClientError,
            _ => Class::ServerError,
        }
    }
}

/// Whether a response is gRPC (`content-type: application/grpc`, `+proto` etc.).
pub fn is_grpc(content_type: Option<&[u8]>) -> bool {
    content_type.is_some_and(|ct| {
        let ct = ct.trim_ascii();
        ct.len() >= 16
            && ct
                .get(..16)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"application/grpc"))
            && matches!(ct.get(16), None | Some(b'+' | b';'))
    })
}

/// A `grpc-status` value that means failure: present and not exactly `0`
/// (a value that is not a number is a failure too).
pub fn grpc_failed(grpc_status: Option<&[u8]>) -> bool {
    grpc_status.is_some_and(|s| s.trim_ascii() != b"0")
}

/// The class of a response from its `:status` and, for gRPC, its `grpc-status`.
pub fn classify(status: u32, grpc_status: Option<&[u8]>) -> Class {
    if grpc_failed(grpc_status) {
        Class::GrpcError
    } else {
        Class::of_status(status)
    }
}

/// What a guard counts as a failure: classes and exact codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failures {
    classes: Vec<Class>,
    codes: Vec<u32>,
}

impl Default for Failures {
    /// `["5xx", "grpc_error"]`.
    fn default() -> Self {
        Self {
            classes: vec![Class::ServerError, Class::GrpcError],
            codes: Vec::new(),
        }
    }
}

impl Failures {
    /// From `failure_statuses` entries: class labels (`5xx`, `grpc_error`, ...)
    /// or status codes 100..=599 (`"429"`). Errors name the entry's index.
    pub fn parse(entries: &[String]) -> Result<Self, (usize, String)> {
        let mut failures = Failures {
            classes: Vec::new(),
            codes: Vec::new(),
        };
        for (i, entry) in entries.iter().enumerate() {
            if let Some(class) = Class::from_label(entry) {
                failures.classes.push(class);
                continue;
            }
            match entry.parse::<u32>() {
                Ok(code) if (100..=599).contains(&code) && entry.len() == 3 => {
                    failures.codes.push(code)
                }
                _ => {
                    return Err((
                        i,
                        format!("\"{entry}\" is neither a status class (1xx, 2xx, 3xx, 4xx, 5xx, grpc_error) nor a status code 100-599"),
                    ))
                }
            }
        }
        Ok(failures)
    }

    pub fn is_failure(&self, status: u32, class: Class) -> bool {
        self.classes.contains(&class) || (class != Class::GrpcError && self.codes.contains(&status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify(200, None), Class::Success);
        assert_eq!(classify(204, Some(b"0")), Class::Success);
        assert_eq!(classify(200, Some(b"14")), Class::GrpcError);
        assert_eq!(classify(200, Some(b"x")), Class::GrpcError);
        assert_eq!(classify(503, None), Class::ServerError);
        assert_eq!(classify(101, None), Class::Informational);
        assert_eq!(classify(404, None), Class::ClientError);
        assert_eq!(classify(302, None), Class::Redirect);
        assert_eq!(classify(999, None), Class::ServerError);
        for c in Class::ALL {
            assert_eq!(Class::from_label(c.label()), Some(c));
        }
    }

    #[test]
    fn grpc_content_types() {
        assert!(is_grpc(Some(b"application/grpc")));
        assert!(is_grpc(Some(b"application/grpc+proto")));
        assert!(is_grpc(Some(b"Application/GRPC; charset=utf-8")));
        assert!(!is_grpc(Some(b"application/grpc-web")));
        assert!(!is_grpc(Some(b"application/json")));
        assert!(!is_grpc(None));
    }

    #[test]
    fn failure_statuses() {
        let f = Failures::default();
        assert!(f.is_failure(503, Class::ServerError));
        assert!(f.is_failure(200, Class::GrpcError));
        assert!(!f.is_failure(429, Class::ClientError));
        let f = Failures::parse(&["429".into(), "5xx".into()]).unwrap();
        assert!(f.is_failure(429, Class::ClientError));
        assert!(f.is_failure(500, Class::ServerError));
        assert!(!f.is_failure(404, Class::ClientError));
        assert!(
            !f.is_failure(200, Class::GrpcError),
            "grpc_error not listed"
        );
        assert_eq!(
            Failures::parse(&["5xx".into(), "600".into()]).unwrap_err(),
            (1, "\"600\" is neither a status class (1xx, 2xx, 3xx, 4xx, 5xx, grpc_error) nor a status code 100-599".into())
        );
        assert!(Failures::parse(&["0429".into()]).is_err());
        assert!(Failures::parse(&["5XX".into()]).is_err());
    }
}
