//! Serving files from a directory the admin chose (the chat page's
//! converse.js): a request path becomes a file path only if every segment
//! is a plain name, so nothing outside the directory can be reached
//! (`..`, encoded slashes, hidden files, absolute paths are refused).

use std::path::{Path, PathBuf};

/// The file under `root` that `rel` (a URL path below the mount point,
/// still percent-encoded) names, or `None` if it names none safely.
pub(crate) fn resolve(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for raw in rel.split('/') {
        let seg = percent_decode(raw)?;
        if seg.is_empty()
            || seg.starts_with('.')
            || seg.contains(['/', '\\', '\0'])
            || seg.len() > 255
        {
            return None;
        }
        path.push(seg);
    }
    Some(path)
}

/// `%XX` decoding; `None` for a malformed escape or bytes that are not
/// UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The content type for a file name.
pub(crate) fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or_default();
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "txt" => "text/plain; charset=utf-8",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// A response body read from a file in chunks as the client takes them:
/// memory stays one chunk however large the file.
pub(crate) struct FileBody<R> {
    file: R,
    left: u64,
    buf: Vec<u8>,
}

/// The chunk a file body reads at a time.
const CHUNK: usize = 64 * 1024;

impl<R: tokio::io::AsyncRead + Unpin> FileBody<R> {
    /// The first `len` bytes of `file`.
    pub(crate) fn new(file: R, len: u64) -> FileBody<R> {
        FileBody {
            file,
            left: len,
            buf: Vec::new(),
        }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> http_body::Body for FileBody<R> {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let want = CHUNK.min(usize::try_from(this.left).unwrap_or(CHUNK));
        this.buf.resize(want, 0);
        let mut rb = tokio::io::ReadBuf::new(&mut this.buf);
        match std::pin::Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file is shorter than it was",
                    ))));
                }
                this.left -= n as u64;
                let chunk = bytes::Bytes::copy_from_slice(&this.buf[..n]);
                Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_below_the_root() {
        let root = Path::new("/srv/chat");
        assert_eq!(
            resolve(root, "dist/converse.min.js"),
            Some(PathBuf::from("/srv/chat/dist/converse.min.js"))
        );
        assert_eq!(
            resolve(root, "a%20b.css"),
            Some(PathBuf::from("/srv/chat/a b.css"))
        );
        for evil in [
            "../etc/passwd",
            "dist/../../x",
            "%2e%2e/x",
            "a%2fb",
            "..%5cx",
            ".env",
            "",
            "dist//x",
            "/etc/passwd",
            "%00",
            "%zz",
            "%C0%AE",
        ] {
            assert_eq!(resolve(root, evil), None, "{evil}");
        }
    }
}
