//! Append-only logs: the file format under each account's offline queue
//! and each message archive. Storing a record costs one write and one
//! `fdatasync`, whatever the log already holds.
//!
//! ```text
//! switchboard offline log 1 base=0                    the header line, written with the file
//! ␞m 1 231 5f1e09a2                                    a record: RS, fields, payload length, CRC-32C
//! <message xmlns="jabber:client" …>…</message>         its payload (a stanza), then a newline
//! ␞m 2 198 0c77d1e4
//! <message …>…</message>
//! ```
//!
//! Each record starts with the byte RS (0x1E, shown `␞`), then its
//! fields (space-separated text, their meaning up to the kind of log), the
//! payload's length in decimal and the CRC-32C ([`crate::checksum`]) of
//! the fields, the length and the payload, as eight hex digits; a newline,
//! the payload, a newline. The payloads are serialized XML, so the file
//! reads well in a pager, and since XML cannot contain RS, an RS byte in a
//! log always starts a record: a reader can find the last record from the
//! end of the file.
//!
//! **Torn tails.** The file is fsynced after every append, so a crash can
//! only damage the record being appended: it is cut short, or (on some
//! file systems) the file grew but the new blocks hold zeros or stale
//! data. A scan takes the first record that does not check out as the
//! start of such a tail if **no valid record follows it** anywhere in the
//! file, and reports where the valid part ends; the next writer truncates
//! there. Invalid bytes with a valid record after them cannot come from a
//! crash: that is damage, refused as [`SpoolError::Corrupt`] with its line.
//!
//! The header line is written with the file by an atomic replace
//! ([`crate::atomic`]), so it is never torn; rewriting a log (compaction)
//! is an atomic replace too.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::checksum::Crc32c;
use crate::filename::percent_decode;
use crate::SpoolError;

/// Starts every record.
pub const RS: u8 = 0x1E;

/// The longest header line (of the file or of a record) read.
const MAX_LINE: usize = 4096;

/// The largest payload a record may declare.
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// How much of a log a scan checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Every record's framing and checksum.
    All,
    /// Every record's framing, and the checksum of the last record only
    /// (to tell a torn tail); the others are checked when they are read
    /// ([`read_at`]). For logs too large to checksum whole on every open.
    Framing,
}

/// One record as a scan or a read finds it.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Where the record starts in the file.
    pub offset: u64,
    /// The line its header is on (1-based; the file header is line 1).
    pub line: u32,
    pub fields: &'a str,
    pub payload: &'a [u8],
    /// The whole record's length in bytes.
    pub len: u64,
}

/// What a scan found besides the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Where the valid records end: the file's length, or the start of a
    /// torn tail.
    pub end: u64,
    /// The line the next record would start on.
    pub line: u32,
    /// How many bytes of torn tail follow `end` (0 when clean).
    pub torn: u64,
}

/// The header line of a new log of `kind`, with `fields` (may be empty).
pub fn file_header(kind: &str, fields: &str) -> Vec<u8> {
    let mut line = format!("switchboard {kind} log 1");
    if !fields.is_empty() {
        line.push(' ');
        line.push_str(fields);
    }
    line.push('\n');
    line.into_bytes()
}

/// Reads a log's header line: its fields and the line's length. A file of
/// another kind or version, or without a complete header, is corrupt.
pub fn read_file_header(path: &Path, file: &File, kind: &str) -> Result<(String, u64), SpoolError> {
    let mut buf = vec![0; MAX_LINE];
    let n = read_up_to(file, 0, &mut buf).map_err(|e| SpoolError::io(path, e))?;
    let bad = |message: String| SpoolError::corrupt(path, 1, 1, message);
    let Some(nl) = buf[..n].iter().position(|&b| b == b'\n') else {
        return Err(bad(format!("no complete header line: not a {kind} log")));
    };
    let line = std::str::from_utf8(&buf[..nl])
        .map_err(|_| bad(format!("the header line is not UTF-8: not a {kind} log")))?;
    let expected = format!("switchboard {kind} log 1");
    let fields = match line.strip_prefix(&expected) {
        Some("") => "",
        Some(rest) if rest.starts_with(' ') => &rest[1..],
        _ => {
            return Err(bad(format!(
                "the header line is \"{line}\", not \"{expected}\": another kind or version of log"
            )))
        }
    };
    Ok((fields.to_owned(), nl as u64 + 1))
}

/// A record with these fields and payload, as bytes to append. Fields must
/// not hold a newline or RS, the payload must not hold RS (escape fields
/// with [`escape`]; serialized XML never holds RS).
pub fn record(fields: &str, payload: &[u8]) -> Vec<u8> {
    debug_assert!(!fields.bytes().any(|b| b == b'\n' || b == RS));
    debug_assert!(!payload.contains(&RS));
    let prefix = format!("{fields} {}", payload.len());
    let mut crc = Crc32c::new();
    crc.update(prefix.as_bytes());
    crc.update(payload);
    let mut out = Vec::with_capacity(prefix.len() + payload.len() + 12);
    out.push(RS);
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(format!(" {:08x}\n", crc.finish()).as_bytes());
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

/// Escapes text for a field: `%`, spaces, control characters and DEL as
/// `%XX`, so that a field holds no space, newline or RS. Any text, the
/// empty string included, survives [`unescape`].
pub fn escape(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b <= 0x20 || b == 0x7F || b == b'%' {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).expect("escaping ASCII bytes keeps UTF-8 sequences whole")
}

/// Inverts [`escape`]; `None` for malformed escapes.
pub fn unescape(field: &str) -> Option<String> {
    percent_decode(field)
}

/// The parsed header of a record, before its payload is read.
struct Head {
    fields_end: usize,
    len: usize,
    crc: u32,
}

/// Parses a record's header line (without RS and newline).
fn parse_head(line: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.rsplitn(3, ' ');
    let crc = parts.next()?;
    let len = parts.next()?;
    let fields = parts.next()?;
    let hex = |s: &str| s.len() == 8 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let digits = |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
    if fields.is_empty() || !hex(crc) || !digits(len) {
        return None;
    }
    let len: usize = len.parse().ok()?;
    (len <= MAX_PAYLOAD).then_some(Head {
        fields_end: fields.len(),
        len,
        crc: u32::from_str_radix(crc, 16).ok()?,
    })
}

/// Whether the payload matches the header's checksum. `line` is the header
/// line without RS and newline.
fn checks_out(line: &[u8], head: &Head, payload: &[u8]) -> bool {
    let mut crc = Crc32c::new();
    // The checksum covers "<fields> <len>": the line up to the last space.
    crc.update(&line[..line.len() - 9]);
    crc.update(payload);
    crc.finish() == head.crc
}

/// Why a record did not read.
enum Fail {
    /// The bytes are not a valid record.
    Bad,
    Io(io::Error),
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Fail::Bad
        } else {
            Fail::Io(e)
        }
    }
}

/// Reads every record from `from` (the end of the header, or where an
/// earlier scan ended; `line` is the line there) to the end of the file,
/// calling `each` for each one in order. A torn tail ends the scan (see
/// the module documentation); damage is an error.
pub fn scan(
    path: &Path,
    file: &File,
    from: u64,
    line: u32,
    checks: Checks,
    each: &mut dyn FnMut(Record<'_>) -> Result<(), SpoolError>,
) -> Result<Scanned, SpoolError> {
    let io = |e| SpoolError::io(path, e);
    let size = file.metadata().map_err(io)?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    reader.seek(SeekFrom::Start(from)).map_err(io)?;
    let (mut pos, mut line) = (from, line);
    let mut head_line = Vec::with_capacity(128);
    let mut payload = Vec::new();
    while pos < size {
        let read = read_next(&mut reader, pos, size, checks, &mut head_line, &mut payload);
        match read {
            Ok((head, len)) => {
                let fields = std::str::from_utf8(&head_line[..head.fields_end])
                    .expect("parse_head checked UTF-8");
                each(Record {
                    offset: pos,
                    line,
                    fields,
                    payload: &payload[..head.len],
                    len,
                })?;
                line += 2 + payload[..head.len].iter().filter(|&&b| b == b'\n').count() as u32;
                pos += len;
            }
            Err(Fail::Io(e)) => return Err(io(e)),
            Err(Fail::Bad) => {
                if valid_record_after(file, pos + 1, size).map_err(io)? {
                    return Err(SpoolError::corrupt(
                        path,
                        line,
                        1,
                        "a damaged record, with valid records after it (not a torn write: \
                         restore the file from a backup, or cut the record out by hand)",
                    ));
                }
                return Ok(Scanned {
                    end: pos,
                    line,
                    torn: size - pos,
                });
            }
        }
    }
    Ok(Scanned {
        end: pos,
        line,
        torn: 0,
    })
}

/// Reads the record at `pos` from `reader` (positioned there): its header
/// (left in `head_line`, without RS and newline) and payload (in
/// `payload`), and its whole length.
fn read_next(
    reader: &mut BufReader<&File>,
    pos: u64,
    size: u64,
    checks: Checks,
    head_line: &mut Vec<u8>,
    payload: &mut Vec<u8>,
) -> Result<(Head, u64), Fail> {
    head_line.clear();
    let mut rs = [0u8];
    reader.read_exact(&mut rs)?;
    if rs[0] != RS {
        return Err(Fail::Bad);
    }
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', head_line)?;
    if n == 0 || head_line.last() != Some(&b'\n') {
        return Err(Fail::Bad);
    }
    head_line.pop();
    let head = parse_head(head_line).ok_or(Fail::Bad)?;
    let len = 1 + n as u64 + head.len as u64 + 1;
    if pos + len > size {
        return Err(Fail::Bad);
    }
    payload.resize(head.len + 1, 0);
    reader.read_exact(payload)?;
    if payload[head.len] != b'\n' {
        return Err(Fail::Bad);
    }
    let last = pos + len == size;
    if (checks == Checks::All || last) && !checks_out(head_line, &head, &payload[..head.len]) {
        return Err(Fail::Bad);
    }
    Ok((head, len))
}

/// A whole record read at `offset`, checked; `None` when the bytes there
/// are not one valid record within `size`. The record is returned as its
/// fields and payload.
pub fn record_at(
    file: &File,
    offset: u64,
    size: u64,
) -> io::Result<Option<(String, Vec<u8>, u64)>> {
    let mut head = vec![0; MAX_LINE + 1];
    let n = read_up_to(file, offset, &mut head)?;
    let head = &head[..n.min((size - offset.min(size)) as usize)];
    if head.first() != Some(&RS) {
        return Ok(None);
    }
    let Some(nl) = head.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let line = &head[1..nl];
    let Some(h) = parse_head(line) else {
        return Ok(None);
    };
    let len = nl as u64 + 1 + h.len as u64 + 1;
    if offset + len > size {
        return Ok(None);
    }
    let mut payload = vec![0; h.len + 1];
    let got = read_up_to(file, offset + nl as u64 + 1, &mut payload)?;
    if got != payload.len() || payload[h.len] != b'\n' {
        return Ok(None);
    }
    payload.truncate(h.len);
    if !checks_out(line, &h, &payload) {
        return Ok(None);
    }
    let fields =
        String::from_utf8(line[..h.fields_end].to_vec()).expect("parse_head checked UTF-8");
    Ok(Some((fields, payload, len)))
}

/// Reads a record the index says is at `offset` and `len` bytes long,
/// checking it whole: damage found now (a bad disk) is corrupt, with the
/// line the index knows.
pub fn read_at(
    path: &Path,
    file: &File,
    offset: u64,
    len: u64,
    line: u32,
) -> Result<(String, Vec<u8>), SpoolError> {
    match record_at(file, offset, offset + len).map_err(|e| SpoolError::io(path, e))? {
        Some((fields, payload, n)) if n == len => Ok((fields, payload)),
        _ => Err(SpoolError::corrupt(
            path,
            line,
            1,
            "a damaged record (its checksum or framing does not match)",
        )),
    }
}

/// Whether any valid record starts after `from`. Each RS byte is a
/// candidate start; a candidate counts only if it checks out whole.
fn valid_record_after(file: &File, from: u64, size: u64) -> io::Result<bool> {
    let mut pos = from;
    let mut buf = vec![0; 64 * 1024];
    while pos < size {
        let n = read_up_to(file, pos, &mut buf)?;
        if n == 0 {
            break;
        }
        for (i, _) in buf[..n].iter().enumerate().filter(|(_, &b)| b == RS) {
            if record_at(file, pos + i as u64, size)?.is_some() {
                return Ok(true);
            }
        }
        pos += n as u64;
    }
    Ok(false)
}

/// Whether the log ends with a complete, valid record (or has none after
/// its header at `start`), found from the end: the last RS byte in the
/// file starts the last record. Costs one record's reading; `false` sends
/// the caller to a full [`scan`].
pub fn tail_is_clean(file: &File, start: u64, size: u64) -> io::Result<bool> {
    if size <= start {
        return Ok(size == start);
    }
    let window = (MAX_PAYLOAD + MAX_LINE + 2) as u64;
    let floor = start.max(size.saturating_sub(window));
    let mut end = size;
    let mut buf = vec![0; 64 * 1024];
    while end > floor {
        let begin = end.saturating_sub(buf.len() as u64).max(floor);
        let chunk = &mut buf[..(end - begin) as usize];
        let n = read_up_to(file, begin, chunk)?;
        if let Some(i) = chunk[..n].iter().rposition(|&b| b == RS) {
            let at = begin + i as u64;
            return Ok(matches!(record_at(file, at, size)?, Some((_, _, len)) if at + len == size));
        }
        end = begin;
    }
    Ok(false)
}

/// Appends `bytes` at `at` (the end of the valid records) and flushes them
/// to disk. On failure the file is cut back to `at`, best effort, so that a
/// half-written record does not sit before the next append.
pub fn append(path: &Path, file: &File, at: u64, bytes: &[u8]) -> Result<(), SpoolError> {
    write_end(path, file, at, bytes, Flush::Now)
}

/// Whether an append flushes its file itself, or leaves that to the
/// caller, who makes several files durable with one flush of their
/// filesystem ([`sync_filesystem`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    Now,
    Later,
}

/// [`append`], with the flush as `flush` says.
pub fn write_end(
    path: &Path,
    file: &File,
    at: u64,
    bytes: &[u8],
    flush: Flush,
) -> Result<(), SpoolError> {
    let written = file.write_all_at(bytes, at).and_then(|()| match flush {
        Flush::Now => file.sync_data(),
        Flush::Later => Ok(()),
    });
    if let Err(e) = written {
        let _ = file.set_len(at).and_then(|()| file.sync_data());
        return Err(SpoolError::io(path, e));
    }
    Ok(())
}

/// Makes everything written to the filesystem holding `dir` durable with
/// one flush (`syncfs(2)`): the group commit of appends to many files made
/// with [`Flush::Later`]. One device flush instead of one per file is what
/// makes archiving every message affordable; the price is that the flush
/// also writes whatever other programs left dirty on that filesystem, so a
/// busy server keeps its spool on a filesystem of its own. Since Linux 5.8
/// the call reports write-back errors, which is what lets an error here
/// mean "not durable".
pub fn sync_filesystem(dir: &Path) -> Result<(), SpoolError> {
    let handle = File::open(dir).map_err(|e| SpoolError::io(dir, e))?;
    // SAFETY: syncfs takes an open descriptor, which `handle` owns for the
    // duration of the call.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
        return Err(SpoolError::io(dir, io::Error::last_os_error()));
    }
    Ok(())
}

/// Cuts a torn tail off at `at`, durably.
pub fn truncate(path: &Path, file: &File, at: u64) -> Result<(), SpoolError> {
    file.set_len(at)
        .and_then(|()| file.sync_data())
        .map_err(|e| SpoolError::io(path, e))
}

/// Reads into `buf` from `offset` until it is full or the file ends.
fn read_up_to(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn log_with(records: &[(&str, &[u8])]) -> (tempfile::NamedTempFile, u64) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let header = file_header("test", "a=1");
        f.write_all(&header).unwrap();
        for (fields, payload) in records {
            f.write_all(&record(fields, payload)).unwrap();
        }
        f.flush().unwrap();
        (f, header.len() as u64)
    }

    /// Each record's fields, payload and line.
    type Records = Vec<(String, Vec<u8>, u32)>;

    fn all(f: &tempfile::NamedTempFile, start: u64) -> Result<(Records, Scanned), SpoolError> {
        let mut out = Vec::new();
        let scanned = scan(f.path(), f.as_file(), start, 2, Checks::All, &mut |r| {
            out.push((r.fields.to_owned(), r.payload.to_vec(), r.line));
            Ok(())
        })?;
        Ok((out, scanned))
    }

    #[test]
    fn records_read_back_with_their_lines() {
        let (f, start) = log_with(&[("m 1", b"<a/>"), ("m 2", b"two\nlines"), ("m 3", b"")]);
        let (fields, rest) = read_file_header(f.path(), f.as_file(), "test").unwrap();
        assert_eq!((fields.as_str(), rest), ("a=1", start));
        let (records, scanned) = all(&f, start).unwrap();
        let lines: Vec<u32> = records.iter().map(|r| r.2).collect();
        assert_eq!(lines, [2, 4, 7]);
        assert_eq!(records[1].1, b"two\nlines");
        assert_eq!(scanned.torn, 0);
        assert_eq!(scanned.end, f.as_file().metadata().unwrap().len());
        assert!(tail_is_clean(f.as_file(), start, scanned.end).unwrap());
        let err = read_file_header(f.path(), f.as_file(), "other").unwrap_err();
        assert!(err.to_string().contains("another kind"), "{err}");
    }

    #[test]
    fn every_cut_of_the_last_record_is_a_torn_tail() {
        let (f, start) = log_with(&[("m 1", b"<a>first</a>"), ("m 2", b"<b>second</b>")]);
        let full = std::fs::read(f.path()).unwrap();
        let second = full.len() - record("m 2", b"<b>second</b>").len();
        for cut in second..full.len() {
            std::fs::write(f.path(), &full[..cut]).unwrap();
            let (records, scanned) = all(&f, start).unwrap();
            assert_eq!(records.len(), 1, "cut at {cut}");
            assert_eq!(
                (scanned.end, scanned.torn),
                (second as u64, (cut - second) as u64)
            );
            assert_eq!(
                tail_is_clean(f.as_file(), start, cut as u64).unwrap(),
                cut == second
            );
        }
        // Zeros or stale bytes where the last record should be.
        for junk in [vec![0u8; 40], b"stale data\nfrom another file".to_vec()] {
            let mut bytes = full[..second].to_vec();
            bytes.extend_from_slice(&junk);
            std::fs::write(f.path(), &bytes).unwrap();
            let (records, scanned) = all(&f, start).unwrap();
            assert_eq!((records.len(), scanned.end), (1, second as u64));
        }
    }

    #[test]
    fn damage_followed_by_valid_records_is_refused_with_its_line() {
        let (f, start) = log_with(&[("m 1", b"one"), ("m 2", b"two"), ("m 3", b"three")]);
        let mut bytes = std::fs::read(f.path()).unwrap();
        let at = bytes.windows(3).position(|w| w == b"two").unwrap();
        bytes[at] = b'T';
        std::fs::write(f.path(), &bytes).unwrap();
        let err = all(&f, start).unwrap_err();
        match err {
            SpoolError::Corrupt { line, .. } => assert_eq!(line, 4),
            other => panic!("{other}"),
        }
        // With framing checks only, the damage passes the scan but not a
        // read of that record.
        let mut offsets = Vec::new();
        scan(f.path(), f.as_file(), start, 2, Checks::Framing, &mut |r| {
            offsets.push((r.offset, r.len, r.line));
            Ok(())
        })
        .unwrap();
        let (o, l, line) = offsets[1];
        assert!(read_at(f.path(), f.as_file(), o, l, line).is_err());
        assert!(read_at(f.path(), f.as_file(), offsets[2].0, offsets[2].1, 6).is_ok());
    }

    #[test]
    fn fields_escape_anything() {
        for s in [
            "",
            "plain",
            "a b",
            "line\nbreak",
            "rs\u{1e}",
            "100%",
            "ä ✓",
            "\u{7f}",
        ] {
            let e = escape(s);
            assert!(!e.bytes().any(|b| b <= 0x20 || b == 0x7F), "{e:?}");
            assert_eq!(unescape(&e).as_deref(), Some(s));
        }
    }
}
