//! `GET /metrics`: the core's counters and gauges in the Prometheus text
//! format, on the `<metrics>` listener (which serves nothing else; the
//! numbers are not for everyone).

use http::{Method, Response};

use crate::reply::{self, Body};
use crate::App;

/// The content type of the text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn serve(app: &App, method: &Method) -> Response<Body> {
    match *method {
        Method::GET => reply::ok(CONTENT_TYPE, app.handles.scrape.render()),
        Method::HEAD => {
            // The length a GET would have, and no body.
            let len = app.handles.scrape.render().len();
            let mut r = reply::ok(CONTENT_TYPE, "");
            r.headers_mut()
                .insert(http::header::CONTENT_LENGTH, len.into());
            r
        }
        _ => reply::method_not_allowed("GET, HEAD"),
    }
}
