//! Reading the console's forms: an `application/x-www-form-urlencoded`
//! body of at most `<web max-body-bytes>` (413 beyond, before it is all
//! read) that arrives within `<web body-timeout>` (408 after), decoded
//! into fields.

use http::{header, HeaderMap, StatusCode};
use hyper::body::Incoming;

use crate::body::BodyError;

use crate::files::percent_decode;

/// A submitted form's fields, in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// The first value of field `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// The value of field `name` with surrounding white space removed;
    /// `None` when that leaves nothing.
    pub fn trimmed(&self, name: &str) -> Option<&str> {
        Some(self.get(name).trim()).filter(|v| !v.is_empty())
    }
}

/// Why a form was not read: the status and a sentence.
pub(crate) type Refusal = (StatusCode, String);

/// Reads and decodes the request's form body.
pub(crate) async fn read(
    headers: &HeaderMap,
    body: Incoming,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Form, Refusal> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a form may be at most {max} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !kind
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "forms are sent as application/x-www-form-urlencoded".into(),
        ));
    }
    let bytes = match crate::body::collect(body, max, timeout).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Err(too_large()),
        Err(BodyError::TimedOut) => {
            return Err((
                StatusCode::REQUEST_TIMEOUT,
                format!("the form did not arrive within {} s", timeout.as_secs_f64()),
            ))
        }
        Err(BodyError::Cut) => {
            return Err((
                StatusCode::BAD_REQUEST,
                "the form was cut short".to_string(),
            ))
        }
    };
    parse(&bytes).ok_or((
        StatusCode::BAD_REQUEST,
        "the form is not valid URL-encoded UTF-8".into(),
    ))
}

/// Decodes `a=1&b=x+y`; `None` for a malformed escape or text that is
/// not UTF-8.
pub(crate) fn parse(body: &[u8]) -> Option<Form> {
    let text = std::str::from_utf8(body).ok()?;
    let mut fields = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(&k.replace('+', " "))?;
        let v = percent_decode(&v.replace('+', " "))?;
        fields.push((k, v));
    }
    Some(Form(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_decoded() {
        let f = parse(b"user=al%C3%A9x&body=Hello+there%21%0D%0Abye&empty=&flag").unwrap();
        assert_eq!(f.get("user"), "al\u{e9}x");
        assert_eq!(f.get("body"), "Hello there!\r\nbye");
        assert_eq!(f.get("empty"), "");
        assert_eq!(f.trimmed("empty"), None);
        assert_eq!(f.get("flag"), "");
        assert_eq!(f.get("missing"), "");
        // A literal plus is sent as %2B.
        assert_eq!(parse(b"p=a%2Bb").unwrap().get("p"), "a+b");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert_eq!(parse(b"a=%zz"), None);
        assert_eq!(parse(b"a=%C3"), None);
        assert_eq!(parse(&[b'a', b'=', 0xff]), None);
    }
}
