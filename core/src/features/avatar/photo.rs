//! An avatar image as the three places hold it: a vCard's `PHOTO`
//! (`TYPE`, `BINVAL`, XEP-0054/0153), XEP-0084's `<data/>` item, and its
//! `<info/>` metadata. The hash is the SHA-1 of the image bytes in hex,
//! the same in XEP-0153 presence and as XEP-0084's item id.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha1::{Digest, Sha1};
use switchboard_xml::Element;

use super::NS_METADATA;
use crate::modules::vcard;

/// One avatar image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub mime: String,
    pub bytes: Vec<u8>,
    /// SHA-1 of `bytes`, lowercase hex.
    pub hash: String,
}

/// Base64 as clients write it, possibly wrapped over lines.
fn decode(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = B64.decode(compact).ok()?;
    (!bytes.is_empty()).then_some(bytes)
}

impl Photo {
    fn new(mime: &str, bytes: Vec<u8>) -> Photo {
        let hash = Sha1::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Photo {
            mime: mime.to_owned(),
            bytes,
            hash,
        }
    }

    /// The photo of a vCard (`PHOTO/BINVAL`; a `PHOTO/EXTVAL` link is no
    /// photo the server has).
    pub fn of_vcard(vcard: &Element) -> Option<Photo> {
        let photo = vcard.get_child("PHOTO", vcard::NS)?;
        let bytes = decode(&photo.child_text("BINVAL", vcard::NS)?)?;
        let mime = photo
            .child_text("TYPE", vcard::NS)
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "image/png".into());
        Some(Photo::new(&mime, bytes))
    }

    /// The image of a XEP-0084 `<data/>` payload, of the type its
    /// metadata gives.
    pub fn of_data(data: &Element, mime: &str) -> Option<Photo> {
        Some(Photo::new(mime, decode(&data.text())?))
    }

    pub fn base64(&self) -> String {
        B64.encode(&self.bytes)
    }

    /// XEP-0084's `<info/>` for it.
    pub fn info(&self) -> Element {
        Element::new("info", NS_METADATA)
            .with_attr("bytes", self.bytes.len().to_string())
            .with_attr("id", self.hash.clone())
            .with_attr("type", self.mime.clone())
    }
}

/// A vCard with its `PHOTO` replaced (or removed), the rest kept.
pub fn with_photo(mut vcard: Element, photo: Option<&Photo>) -> Element {
    while vcard.remove_child("PHOTO", vcard::NS).is_some() {}
    if let Some(p) = photo {
        vcard.append_child(
            Element::new("PHOTO", vcard::NS)
                .with_child(Element::new("TYPE", vcard::NS).with_text(p.mime.clone()))
                .with_child(Element::new("BINVAL", vcard::NS).with_text(p.base64())),
        );
    }
    vcard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_sha1_of_the_image_and_line_breaks_do_not_matter() {
        let vcard = Element::new("vCard", vcard::NS).with_child(
            Element::new("PHOTO", vcard::NS)
                .with_child(Element::new("TYPE", vcard::NS).with_text("image/png"))
                .with_child(Element::new("BINVAL", vcard::NS).with_text("aGVs\nbG8=")),
        );
        let p = Photo::of_vcard(&vcard).unwrap();
        assert_eq!(p.bytes, b"hello");
        assert_eq!(p.hash, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
        let data = Element::new("data", super::super::NS_DATA).with_text(p.base64());
        assert_eq!(Photo::of_data(&data, "image/png"), Some(p.clone()));
        assert_eq!(p.info().attr("bytes"), Some("5"),);
        let without = with_photo(vcard.clone(), None);
        assert_eq!(Photo::of_vcard(&without), None);
        assert_eq!(Photo::of_vcard(&with_photo(without, Some(&p))), Some(p));
        let junk = Element::new("data", super::super::NS_DATA).with_text("not base64!");
        assert_eq!(Photo::of_data(&junk, "image/png"), None);
    }
}
