//! Outgoing HTTP: the host lets the request through only if the URL's host is on
//! the plugin's allow-list and does not resolve to a private address.

wit_bindgen::generate!({ path: "wit", world: "http-fetch" });

struct HttpFetch;

impl Guest for HttpFetch {
    fn fetch(url: String) -> Result<Response, String> {
        let response = warden_sdk::http::get(&url).map_err(|e| e.to_string())?;
        let content_type = response
            .header("content-type")
            .map(|value| String::from_utf8_lossy(value).into_owned());
        Ok(Response {
            status: response.status,
            content_type,
            body: response.text(),
        })
    }
}

export!(HttpFetch);
