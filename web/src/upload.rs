//! `/upload/{service}/{id}/{name}`: the HTTP side of file upload
//! (XEP-0363). PUT takes a file for a slot the upload service signed;
//! GET serves it. Everything is checked before a byte is stored: the
//! signature and expiry of the slot, the declared length against the
//! slot's size, the content type, the owner's quota; then the body is
//! streamed into the blob store in chunks (memory stays one chunk for a
//! file of any size), within a time limit that grows with the bytes
//! received (`body.rs`: a stalled or trickled body is given up, and what
//! was written of it removed, so it stores nothing and takes none of
//! the quota). GET answers with the stored type, a `Content-Disposition` with
//! the file name, CORS headers for web clients, and a sandboxing CSP so a
//! stored HTML file cannot script this origin.

use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use switchboard_spool::store::{BlobMeta, StoreError};
use switchboard_upload::slot::{percent_decode, percent_encode, Slot};
use switchboard_upload::store::{unix_now, usage};
use switchboard_upload::Uploads;

use crate::body::Deadline;
use crate::files::FileBody;
use crate::reply::{self, Body};
use crate::App;

pub(crate) async fn serve(app: &App, rest: &str, req: Request<Incoming>) -> Response<Body> {
    let mut parts = rest.splitn(3, '/');
    let (Some(service), Some(id), Some(raw_name)) = (parts.next(), parts.next(), parts.next())
    else {
        return reply::not_found();
    };
    let Some(up) = app.uploads.iter().find(|u| u.jid == service) else {
        return reply::not_found();
    };
    let Some(name) = percent_decode(raw_name) else {
        return reply::error(StatusCode::BAD_REQUEST, "the file name is not valid UTF-8");
    };
    let response = match *req.method() {
        // Web clients on other origins may upload and fetch (XEP-0363 §7).
        Method::OPTIONS => reply::preflight("GET, HEAD, PUT, OPTIONS"),
        Method::PUT => put(app, up, id, &name, req).await,
        Method::GET | Method::HEAD => get(up, id, &name, req.method()).await,
        _ => reply::method_not_allowed("GET, HEAD, PUT, OPTIONS"),
    };
    reply::cors(response)
}

async fn put(
    app: &App,
    up: &Arc<Uploads>,
    id: &str,
    name: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some(key) = up.key() else {
        return reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the upload service is not running yet; try again",
        );
    };
    let query = req.uri().query().unwrap_or_default();
    let slot = match Slot::verify(&up.jid, id, name, query, key, unix_now()) {
        Ok(s) => s,
        Err(e) => return reply::error(StatusCode::FORBIDDEN, e.to_string()),
    };
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(n) if n == slot.size => {}
        Some(n) => {
            return reply::error(
                StatusCode::PAYLOAD_TOO_LARGE.max_if(n > slot.size),
                format!("the slot is for {} bytes, not {n}", slot.size),
            )
        }
        None => {
            return reply::error(
                StatusCode::LENGTH_REQUIRED,
                "say the file's length (Content-Length)",
            )
        }
    }
    if let Some(t) = req.headers().get(header::CONTENT_TYPE) {
        let t = switchboard_upload::slot::content_type(t.to_str().ok());
        if t != slot.content_type {
            return reply::error(
                StatusCode::BAD_REQUEST,
                format!("the slot is for {}, not {t}", slot.content_type),
            );
        }
    }
    // The quota again: slots given out before other uploads finished
    // could add up past it.
    match usage(up.blobs.as_ref(), &up.jid, &slot.owner).await {
        Ok(used) if used.saturating_add(slot.size) > up.settings.quota => {
            return reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "over the upload quota: {used} of {} bytes used; this file needs {}",
                    up.settings.quota, slot.size
                ),
            )
        }
        Ok(_) => {}
        Err(e) => return storage_error(&up.jid, e),
    }
    let now = unix_now();
    let meta = BlobMeta {
        owner: slot.owner.clone(),
        name: slot.name.clone(),
        content_type: slot.content_type.clone(),
        size: slot.size,
        created: now,
        expires: up.settings.expire.map(|e| now + e),
    };
    let mut writer = match up.blobs.create(&up.jid, id, meta).await {
        Ok(w) => w,
        Err(StoreError::AlreadyExists) => {
            return reply::error(StatusCode::CONFLICT, "this slot has been used already")
        }
        Err(e) => return storage_error(&up.jid, e),
    };
    let mut body = req.into_body();
    let mut deadline = Deadline::new(app.web.body_timeout, app.web.min_body_rate);
    loop {
        let frame = match tokio::time::timeout_at(deadline.next(), body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::debug!(service = %up.jid, "upload body: {e}");
                return reply::error(StatusCode::BAD_REQUEST, "the upload was cut short");
            }
            Err(_) => {
                // The writer is dropped on return, which removes what
                // was written: nothing stored, nothing on the quota.
                tracing::info!(
                    service = %up.jid,
                    owner = %slot.owner,
                    seconds = deadline.elapsed().as_secs(),
                    "upload too slow; given up"
                );
                return crate::body::timed_out(format!(
                    "the upload arrived too slowly (nothing for {} s, or under {} bytes a \
                     second on average); given up, nothing stored",
                    app.web.body_timeout.as_secs_f64(),
                    app.web.min_body_rate
                ));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        deadline.received(data.len());
        if let Err(e) = writer.write(&data).await {
            return match e {
                StoreError::Invalid(_) => reply::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("more than the slot's {} bytes", slot.size),
                ),
                e => storage_error(&up.jid, e),
            };
        }
    }
    match writer.commit().await {
        Ok(()) => {
            tracing::info!(service = %up.jid, owner = %slot.owner, size = slot.size, "file uploaded");
            reply::with(StatusCode::CREATED, "text/plain; charset=utf-8", "stored\n")
        }
        Err(StoreError::Invalid(_)) => reply::error(
            StatusCode::BAD_REQUEST,
            format!("fewer than the slot's {} bytes arrived", slot.size),
        ),
        Err(StoreError::AlreadyExists) => {
            reply::error(StatusCode::CONFLICT, "this slot has been used already")
        }
        Err(e) => storage_error(&up.jid, e),
    }
}

async fn get(up: &Arc<Uploads>, id: &str, name: &str, method: &Method) -> Response<Body> {
    let (meta, reader) = match up.blobs.open(&up.jid, id).await {
        Ok(Some(found)) => found,
        Ok(None) | Err(StoreError::Invalid(_)) => return reply::not_found(),
        Err(e) => return storage_error(&up.jid, e),
    };
    if meta.name != name || meta.expires.is_some_and(|e| e <= unix_now()) {
        return reply::not_found();
    }
    let body = if *method == Method::HEAD {
        reply::full("")
    } else {
        FileBody::new(reader, meta.size).boxed_unsync()
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&meta.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, meta.size.into());
    // Pictures, sound and video show in the page; anything else is a
    // download.
    let inline = ["image/", "audio/", "video/"]
        .iter()
        .any(|p| meta.content_type.starts_with(p))
        && meta.content_type != "image/svg+xml";
    let disposition = format!(
        "{}; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        percent_encode(&meta.name)
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    r
}

fn storage_error(service: &str, e: StoreError) -> Response<Body> {
    tracing::error!(%service, "upload storage: {e}");
    match e {
        StoreError::Full(_) => reply::error(
            StatusCode::INSUFFICIENT_STORAGE,
            "the server's storage is full; try again later",
        ),
        _ => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the file store failed; the administrator has been told in the log",
        ),
    }
}

/// `413` when the client sent more than allowed, `400` otherwise.
trait MaxIf {
    fn max_if(self, too_large: bool) -> StatusCode;
}

impl MaxIf for StatusCode {
    fn max_if(self, too_large: bool) -> StatusCode {
        if too_large {
            self
        } else {
            StatusCode::BAD_REQUEST
        }
    }
}
