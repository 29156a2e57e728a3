// XMLHttpRequest for Node, as far as strophe.js's BOSH transport uses it.
//
// Browsers have XMLHttpRequest; Node does not, and strophe.js's Node
// setup (ws and @xmldom/xmldom) covers WebSocket and the DOM only. Its
// BOSH requests need open, setRequestHeader, send, abort,
// onreadystatechange, readyState, status, responseText, responseXML and
// getAllResponseHeaders: this class gives exactly those over Node's
// fetch (which verifies the server's certificate against
// NODE_EXTRA_CA_CERTS), and parses the answer with @xmldom/xmldom as a
// browser would parse a text/xml response. It is installed as
// globalThis.XMLHttpRequest by importing this module.
import { DOMParser } from "@xmldom/xmldom";

class NodeXMLHttpRequest {
  constructor() {
    this.readyState = 0;
    this.status = 0;
    this.responseText = "";
    this.responseXML = null;
    this.onreadystatechange = null;
    this.withCredentials = false;
    this._headers = {};
    this._responseHeaders = "";
    this._abort = new AbortController();
  }

  overrideMimeType() {}

  open(method, url) {
    this._method = method;
    this._url = url;
    this._state(1);
  }

  setRequestHeader(name, value) {
    this._headers[name] = value;
  }

  getAllResponseHeaders() {
    return this._responseHeaders;
  }

  send(body) {
    fetch(this._url, {
      method: this._method,
      headers: this._headers,
      body,
      signal: this._abort.signal,
    })
      .then(async (r) => {
        this.status = r.status;
        this._responseHeaders = [...r.headers].map(([k, v]) => `${k}: ${v}\r\n`).join("");
        this.responseText = await r.text();
        if (this.responseText) {
          try {
            this.responseXML = new DOMParser().parseFromString(this.responseText, "text/xml");
          } catch {
            this.responseXML = null;
          }
        }
        this._state(4);
      })
      .catch(() => {
        // A network error or an abort: a browser reports status 0.
        if (this._aborted) return;
        this.status = 0;
        this._state(4);
      });
  }

  abort() {
    this._aborted = true;
    this._abort.abort();
  }

  _state(n) {
    this.readyState = n;
    if (this.onreadystatechange) this.onreadystatechange();
  }
}

globalThis.XMLHttpRequest = NodeXMLHttpRequest;
