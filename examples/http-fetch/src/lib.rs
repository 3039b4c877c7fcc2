//! Outgoing HTTP: the host lets the request through only if the URL's host is on
//! the plugin's allow-list and does not resolve to a private address. When an
//! admin set the secret `API_TOKEN` (`warden secret set acme/http-fetch
//! API_TOKEN`), it goes with HTTPS requests as a bearer token; the plugin
//! never returns or logs it.

wit_bindgen::generate!({ path: "wit", world: "http-fetch" });

struct HttpFetch;

impl Guest for HttpFetch {
    fn fetch(url: String) -> Result<Response, String> {
        let mut request = warden_sdk::http::Request::new(warden_sdk::http::Method::Get, &url);
        // Only over HTTPS: the token never crosses the network in clear.
        // (The host's allow-list bounds where it can go.)
        if url.starts_with("https://")
            && let Some(token) = warden_sdk::secrets::get("API_TOKEN")
        {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().map_err(|e| e.to_string())?;
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
