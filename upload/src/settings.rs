//! The upload service's own attributes on its `<service>` element:
//!
//! ```xml
//! <service id="upload.example.org" type="upload" max-file-size="100M"
//!          quota="1G" expire="30d" domains="example.org"
//!          url="https://example.org:5281"/>
//! ```

use switchboard_xml::Element;

/// Settings of one upload service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSettings {
    /// The largest file (bytes).
    pub max_file_size: u64,
    /// What one user may keep stored at once (bytes).
    pub quota: u64,
    /// How long a file is kept (seconds); `None`: until removed by hand.
    pub expire: Option<u64>,
    /// How long a slot's PUT URL stays valid (seconds).
    pub slot_lifetime: u64,
    /// Whose users may upload.
    pub domains: Vec<String>,
    /// The web side's public base URL; by default the server's first
    /// HTTPS (or HTTP) listener under the first host's name.
    pub url: Option<String>,
}

const ATTRS: &[&str] = &[
    "id",
    "type",
    "name",
    "max-file-size",
    "quota",
    "expire",
    "domains",
    "url",
];

impl UploadSettings {
    /// Reads and checks the element; errors are sentences about it.
    pub fn from_config(id: &str, el: &Element) -> Result<UploadSettings, String> {
        for (name, _) in &el.attrs {
            if !ATTRS.contains(&name.as_str()) && !name.starts_with("xmlns") {
                return Err(format!(
                    "unknown attribute '{name}' on the upload service; it takes {}",
                    ATTRS[3..].join(", ")
                ));
            }
        }
        let size = |attr: &str, default: u64| -> Result<u64, String> {
            match el.attr(attr) {
                None => Ok(default),
                Some(v) => byte_size(v)
                    .ok_or_else(|| format!("{attr}= must be a size like 100M or 1G, not \"{v}\"")),
            }
        };
        let expire = match el.attr("expire").map(str::trim) {
            None => Some(30 * 86400),
            Some("never") => None,
            Some(v) => Some(duration(v).ok_or_else(|| {
                format!("expire= must be a duration like 12h, 30d or \"never\", not \"{v}\"")
            })?),
        };
        let domains = match el.attr("domains") {
            Some(list) => list
                .split_whitespace()
                .map(str::to_ascii_lowercase)
                .collect(),
            None => match id.split_once('.') {
                Some((_, parent)) => vec![parent.to_string()],
                None => return Err(format!("cannot tell whose users {id} serves; say domains=")),
            },
        };
        let url = match el.attr("url") {
            None => None,
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                Some(u.trim_end_matches('/').to_string())
            }
            Some(u) => {
                return Err(format!(
                    "url= must start with https:// or http://, not \"{u}\""
                ))
            }
        };
        Ok(UploadSettings {
            max_file_size: size("max-file-size", 100 << 20)?,
            quota: size("quota", 1 << 30)?,
            expire,
            slot_lifetime: 300,
            domains,
            url,
        })
    }
}

/// `100M`, `1G`, `65536`: binary multiples.
fn byte_size(v: &str) -> Option<u64> {
    let t = v.trim().to_ascii_uppercase();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(&t);
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(end);
    let n: u64 = n.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// `90s`, `5m`, `12h`, `30d`.
fn duration(v: &str) -> Option<u64> {
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(end);
    let n: u64 = n.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    (n > 0).then(|| n.checked_mul(scale)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(attrs: &[(&str, &str)]) -> Element {
        let mut e = Element::new("service", "urn:switchboard:config:1");
        for (k, v) in attrs {
            e.set_attr(*k, *v);
        }
        e
    }

    #[test]
    fn defaults_and_values() {
        let s = UploadSettings::from_config("upload.example.org", &el(&[])).unwrap();
        assert_eq!(s.max_file_size, 100 << 20);
        assert_eq!(s.quota, 1 << 30);
        assert_eq!(s.expire, Some(30 * 86400));
        assert_eq!(s.domains, vec!["example.org"]);
        let s = UploadSettings::from_config(
            "upload.example.org",
            &el(&[
                ("max-file-size", "10M"),
                ("quota", "50M"),
                ("expire", "never"),
                ("url", "https://x.example:5281/"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (s.max_file_size, s.quota, s.expire),
            (10 << 20, 50 << 20, None)
        );
        assert_eq!(s.url.as_deref(), Some("https://x.example:5281"));
    }

    #[test]
    fn mistakes_are_named() {
        let e =
            UploadSettings::from_config("u.example.org", &el(&[("quota", "lots")])).unwrap_err();
        assert!(e.contains("quota="), "{e}");
        let e =
            UploadSettings::from_config("u.example.org", &el(&[("max-size", "1M")])).unwrap_err();
        assert!(e.contains("unknown attribute 'max-size'"), "{e}");
        let e =
            UploadSettings::from_config("u.example.org", &el(&[("expire", "soon")])).unwrap_err();
        assert!(e.contains("expire="), "{e}");
    }
}
